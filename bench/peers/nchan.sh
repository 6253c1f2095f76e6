#!/usr/bin/env bash
# bench/peers/nchan.sh PORT CPU — runs Nchan (nginx + libnginx-mod-nchan, from Debian) on
# 127.0.0.1:PORT, pinned to CPU, in the foreground until killed.
#   publish:   POST http://127.0.0.1:PORT/pub?id=CHANNEL   (body = the message)
#   subscribe: ws://127.0.0.1:PORT/sub?id=CHANNEL[,CHANNEL2…] (each message = one data frame)
#              /gsub: the same, each subscriber authorized first by GET
#              http://127.0.0.1:$WEBAPP_PORT/auth (nchan_authorize_request; 2xx lets it in)
# Installs the packages if missing (apt, through sudo when not root).
set -euo pipefail
PORT="${1:?port}"
CPU="${2:-0}"
# The web app that authorizes /gsub subscribers (the loadgen's, as for hookbox's webhooks).
WEBAPP_PORT="${WEBAPP_PORT:-8090}"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
if [[ ! -x /usr/sbin/nginx || ! -f "$MODULE" ]]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
fi
DIR="$(mktemp -d /tmp/nchan-bench.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT
cat >"$DIR/nginx.conf" <<CONF
load_module $MODULE;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
master_process off;
pid $DIR/nginx.pid;
error_log $DIR/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $DIR/body;
    proxy_temp_path $DIR/proxy;
    fastcgi_temp_path $DIR/fastcgi;
    uwsgi_temp_path $DIR/uwsgi;
    scgi_temp_path $DIR/scgi;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location = /pub {
            nchan_publisher;
            nchan_channel_id \$arg_id;
            nchan_message_buffer_length 10;
        }
        location = /gsub {
            nchan_subscriber websocket;
            nchan_channel_id \$arg_id;
            nchan_channel_id_split_delimiter ",";
            nchan_subscriber_first_message newest;
            nchan_authorize_request /auth;
        }
        location = /auth {
            internal;
            proxy_pass http://127.0.0.1:$WEBAPP_PORT/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /sub {
            nchan_subscriber websocket;
            nchan_channel_id \$arg_id;
            nchan_channel_id_split_delimiter ",";
            nchan_subscriber_first_message newest;
        }
    }
}
CONF
exec taskset -c "$CPU" /usr/sbin/nginx -c "$DIR/nginx.conf"
