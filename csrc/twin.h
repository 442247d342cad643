/* twin.h: compiles the file named by BNPY_TWIN_FILE twice, with T = float and SUF(name) giving
 * name_f32, then with T = double and name_f64, for kernels whose float32 and float64 versions
 * share one body (conv.c, pool.c). The including file defines BNPY_TWIN_BODY around the body. */
#define BNPY_TWIN_BODY
#define T float
#define SUF(name) name##_f32
#include BNPY_TWIN_FILE
#undef T
#undef SUF
#define T double
#define SUF(name) name##_f64
#include BNPY_TWIN_FILE
#undef T
#undef SUF
#undef BNPY_TWIN_BODY
#undef BNPY_TWIN_FILE
