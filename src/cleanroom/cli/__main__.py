import sys

from cleanroom.cli import main

sys.exit(main())
