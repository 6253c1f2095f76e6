# Django 1.3 settings for running django-hookbox 0.3's test suite.
# Everything djhookbox reads is set here; see ../run.sh and the report in
# ../README.md for what each setting feeds into.
import os

HERE = os.path.dirname(os.path.abspath(__file__))

DEBUG = False
TEMPLATE_DEBUG = False
ADMINS = ()
SECRET_KEY = 'djhookbox-compat-tests-not-secret'
SITE_ID = 1
USE_I18N = False

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': ':memory:',
    },
}

INSTALLED_APPS = (
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'djhookbox',
)

# The tests log in with the test client and the webhook views read
# request.user, so sessions + auth middleware are required.
MIDDLEWARE_CLASSES = (
    'django.middleware.common.CommonMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
)

ROOT_URLCONF = 'urls'

# 404.html / 500.html so the tests' in-process webhook server answers its
# own shutdown request (GET /en/fake/request/) without a template traceback.
TEMPLATE_DIRS = (os.path.join(HERE, 'templates'),)

# --- django-hookbox settings -------------------------------------------
# Address djhookbox.publish() POSTs to (http://INTERFACE:PORT/rest/<method>);
# runhookbox also passes it to the server as --interface. HOOKBOX_PORT is
# set by the tests themselves (a random port in 10000-20000).
HOOKBOX_INTERFACE = '127.0.0.1'
# Sent by hookbox to the webhooks as the form field `secret` (-s).
HOOKBOX_WEBHOOK_SECRET = 'djhookbox-webhook-secret'
# Sent by djhookbox to /rest/* as the form field `secret`; runhookbox passes
# it to the server as --rest-secret. test_rest_secret needs it set.
HOOKBOX_REST_SECRET = 'djhookbox-rest-secret'
# HOOKBOX_CBHOST / HOOKBOX_CBPORT are deliberately unset: runhookbox always
# passes `--cbhost localhost --cbport 8000` first, and the tests then add
# their own --cbport; setting these would only add more duplicates.
