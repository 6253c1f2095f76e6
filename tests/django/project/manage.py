#!/usr/bin/env python
# Minimal Django 1.3 manage.py for running django-hookbox's own test suite
# (`manage.py test djhookbox`) against our hookbox binary. See ../run.sh.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')

from django.core.management import execute_from_command_line

if __name__ == '__main__':
    try:
        execute_from_command_line()
        code = 0
    except SystemExit as exc:
        code = exc.code
        if code is not None and not isinstance(code, int):
            sys.stderr.write('%s\n' % (code,))
            code = 1
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    # When hookbox fails to start, djhookbox's @server decorator raises before
    # stopping its (non-daemon) webhook server thread, which would keep the
    # interpreter alive forever: leave without waiting for threads.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))
