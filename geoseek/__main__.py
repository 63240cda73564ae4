import sys

from geoseek.cli import main

sys.exit(main())
