#!/usr/bin/env python
# Minimal Django 1.3 manage.py for running django-hookbox's own test suite
# (`manage.py test djhookbox`) against our hookbox binary. See ../run.sh.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')

from django.core.management import execute_from_command_line

if __name__ == '__main__':
    execute_from_command_line()
