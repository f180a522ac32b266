import sys

from pinnlab.cli import main

sys.exit(main())
