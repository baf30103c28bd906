"""Writes one script's section of bench/RESULTS.md and keeps everyone else's.

Each section starts with its own marker line (`<!-- ... rows: written by bench/... -->`)
and runs to the next such marker or the end. Sections of the scripts run on their own
(this one's callers) go before bench/python.py's, which rewrites from its marker to the
end; bench/run.sh keeps everything from the first marker on.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench/RESULTS.md"
PYTHON_MARK = "<!-- python rows: written by bench/python.py -->"


def load_average():
    """The 1-minute load average, to say how busy the machine was during a run."""
    import os
    return f"{os.getloadavg()[0]:.1f}"


def write_section(mark, body):
    """Replaces the section under `mark` with `body` (or adds it before the Python rows)."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = f"{mark}\n\n{body.strip()}\n\n"
    if mark in text:
        start = text.index(mark)
        nxt = text.find("<!-- ", start + len(mark))
        end = nxt if nxt >= 0 else len(text)
        text = text[:start] + section + text[end:]
    elif PYTHON_MARK in text:
        at = text.index(PYTHON_MARK)
        text = text[:at] + section + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")


def script_args(ap, build):
    """Adds the options every measuring script has (`--no-build`, `--no-write`,
    `--wasmhost`), parses the command line, and builds with `build` unless told not to."""
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--wasmhost", default=str(ROOT / "target/release/wasmhost"))
    args = ap.parse_args()
    if not args.no_build:
        build()
    return args
