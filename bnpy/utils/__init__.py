"""bnpy.utils: np_utils (to_categorical), generic_utils (Progbar), data_utils (get_file),
vis_utils (plot_model, plot_history), as in Keras 2.0."""
