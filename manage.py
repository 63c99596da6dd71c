#!/usr/bin/env python
"""Django's manage.py; operators use the equivalent ``tanfang`` command."""

from tanfang.cli import main

if __name__ == "__main__":
    main()
