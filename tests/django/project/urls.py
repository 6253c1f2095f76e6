from django.conf.urls.defaults import patterns, include

urlpatterns = patterns('',
    (r'^hookbox/', include('djhookbox.urls')),
)
