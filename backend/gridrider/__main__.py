import sys

from gridrider.cli import main

sys.exit(main())
