import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest


@pytest.fixture
def bad_input(capsys):
    """Call `main(argv)` and check the bad-input contract: exit 2, one error line naming `needle` (after
    any progress bars), no traceback, no `out` file."""

    def check(main, argv, out, needle):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, err
        errors = [line for line in err if ": error: " in line]
        assert len(errors) == 1 and errors[0] == err[-1] and needle in errors[0], err
        assert not any("Traceback" in line for line in err), err
        assert not Path(out).exists()
        assert not list(Path(out).parent.glob(f".{Path(out).name}.*")), "temp file left behind"

    return check
