import sys

from began_plugin.training.cli import main

sys.exit(main())
