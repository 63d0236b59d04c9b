import sys

from graphix.cli import main

sys.exit(main())
