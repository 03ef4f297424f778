"""python -m switchyard.cli"""

from switchyard.cli import main

main()
