import sys

from detal.cli import main

sys.exit(main())
