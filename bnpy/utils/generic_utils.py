"""Generic utilities (Keras 2.0's ``keras/utils/generic_utils.py``): the progress bar.

``Progbar`` prints exactly Keras 2.0.8's text::

    25024/50000 [==============>...............] - ETA: 14s - loss: 1.8123 - acc: 0.3456
    50000/50000 [==============================] - 29s - loss: 1.6527 - acc: 0.4102

Where it is redrawn: on a terminal and in Jupyter (ipykernel), the bar is redrawn in place with
``'\\r'`` (Keras also wrote ``'\\b'`` × previous width first; a terminal shows the same, and
Jupyter would print the backspaces as junk), at most once per ``interval`` seconds. Anywhere else
(a log file, a pipe, captured output) the in-place redraws are skipped and the finished bar is
printed once as a whole line, so logs get one clean line per bar instead of Keras 2.0's stream of
``\\b``\\r`` fragments. ``verbose=2`` prints only one summary line when the target is reached.
"""

import sys
import time

import numpy as np


def _is_interactive(stream):
    """True for a terminal or a Jupyter/IPython kernel stream (both honour '\\r')."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules and type(stream).__module__.startswith("ipykernel")


def _format_value(avg, absolute=True):
    small = abs(avg) <= 1e-3 if absolute else avg <= 1e-3
    return " %.4e" % avg if small else " %.4f" % avg


class Progbar:
    """Keras 2.0's progress bar.

    Arguments: ``target`` (total number of steps or samples), ``width`` (of the bar),
    ``verbose`` (1: the bar; 2: one line at the end; 0: silent), ``interval`` (minimum seconds
    between redraws), ``stream`` (default: ``sys.stdout`` at the time of each write), ``dynamic``
    (redraw in place: None detects a terminal or Jupyter, see the module docstring).

    Values passed to ``update(current, [(name, value), ...])`` are averaged weighted by the
    progress each update makes (``current − previous current``), as Keras does.
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stream=None, dynamic=None):
        self.width = width
        self.target = target
        self.sum_values = {}
        self.unique_values = []
        self.start = time.time()
        self.last_update = 0
        self.interval = interval
        self.total_width = 0
        self.seen_so_far = 0
        self.verbose = verbose
        self._stream = stream
        self._dynamic = dynamic
        self._line_open = False  # a redrawn bar without its final newline yet

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def update(self, current, values=None, force=False):
        """Advance to ``current`` and record ``values``; redraw if due (or ``force``)."""
        values = values or []
        for k, v in values:
            if k not in self.sum_values:
                self.sum_values[k] = [v * (current - self.seen_so_far), current - self.seen_so_far]
                self.unique_values.append(k)
            else:
                self.sum_values[k][0] += v * (current - self.seen_so_far)
                self.sum_values[k][1] += current - self.seen_so_far
        self.seen_so_far = current

        now = time.time()
        stream = self.stream
        if self.verbose == 1:
            if not force and (now - self.last_update) < self.interval:
                return
            done = self.target is not None and current >= self.target
            dynamic = _is_interactive(stream) if self._dynamic is None else self._dynamic
            if not dynamic and not (done or force):
                self.last_update = now
                return
            line = self._bar_line(current, now)
            if dynamic:
                prev_total_width = self.total_width
                self.total_width = len(line)
                if prev_total_width > self.total_width:
                    line += " " * (prev_total_width - self.total_width)
                stream.write("\r" + line)
                self._line_open = not done
                if done:
                    stream.write("\n")
            else:  # a whole line: the finished bar, or a forced one (training stopped early)
                stream.write(line + "\n")
            stream.flush()
        elif self.verbose == 2:
            if self.target is None or current >= self.target:
                info = "%ds" % (now - self.start)
                for k in self.unique_values:
                    info += " - %s:" % k
                    info += _format_value(self._average(k), absolute=False)
                stream.write(info + "\n")
                stream.flush()
        self.last_update = now

    def close(self):
        """End an unfinished in-place bar with a newline (e.g. when training stopped early)."""
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False

    def add(self, n, values=None):
        self.update(self.seen_so_far + n, values)

    def _average(self, k):
        total, count = self.sum_values[k]
        return float(np.mean(total / max(1, count)))

    def _bar_line(self, current, now):
        if self.target is None:  # unknown total: a counter and the elapsed time
            info = "%7d/Unknown - %ds" % (current, now - self.start)
            for k in self.unique_values:
                info += " - %s:" % k + _format_value(self._average(k))
            return info
        numdigits = int(np.floor(np.log10(self.target))) + 1 if self.target > 0 else 1
        bar = ("%%%dd/%%%dd [" % (numdigits, numdigits)) % (current, self.target)
        prog_width = (
            int(self.width * float(current) / self.target) if self.target > 0 else self.width
        )
        prog_width = min(prog_width, self.width)
        if prog_width > 0:
            bar += "=" * (prog_width - 1)
            bar += ">" if current < self.target else "="
        bar += "." * (self.width - prog_width)
        bar += "]"
        time_per_unit = (now - self.start) / current if current else 0
        if current < self.target:
            info = " - ETA: %ds" % (time_per_unit * (self.target - current))
        else:
            info = " - %ds" % (now - self.start)
        for k in self.unique_values:
            info += " - %s:" % k + _format_value(self._average(k))
        return bar + info
