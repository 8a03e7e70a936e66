"""`srx serve` with two faults a test can trigger (run in the serving environment, as `python
tests/serve_faulty.py serve ...`): an FP32 image whose first value is FAIL makes the runner raise
(a server fault, as a broken runner would), one whose first value is SLOW keeps it busy for
SLOW_S seconds (a request still in flight when the grace period ends). Every other request runs as
in `srx serve`."""

from __future__ import annotations

import sys
import time

FAIL = -7.0
SLOW = -3.0
SLOW_S = 8.0


def main() -> None:
    from srx.cli import main as srx_main
    from srx.serve import handler

    run = handler.Handler._run

    def faulty(self, batch, shape):
        first = float(batch.flat[0])
        if first == FAIL:
            raise RuntimeError("injected fault: /srv/private/path/model.bin is unreadable")
        if first == SLOW:
            time.sleep(SLOW_S)
        return run(self, batch, shape)

    handler.Handler._run = faulty
    sys.argv = ["srx", *sys.argv[1:]]
    srx_main()


if __name__ == "__main__":
    main()
