/* tcp.c: TCP streams on the loop, with libevent's socket bufferevents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tcp.h"

struct gc_tcp {
  gc_loop *l;
  struct bufferevent *bev;   /* NULL once closed */
  uint64_t id;
  int connected, tls;
  char name[256];   /* the host name looked up, for what a failed lookup says */
};

static void drop_item(gc_io_item *it) {
  gc_tcp_item *t = (gc_tcp_item *)(void *)it;
  free(t->data);
  free(t);
}

static gc_tcp_item *new_item(gc_tcp *t, int event) {
  gc_tcp_item *it = calloc(1, sizeof *it);
  if (!it) return NULL;
  it->item.kind = GC_IO_STREAM;
  it->item.drop = drop_item;
  it->id = t->id;
  it->event = event;
  return it;
}

static void shut(gc_tcp *t, const char *why) {
  if (!t->bev) return;
  bufferevent_free(t->bev);
  t->bev = NULL;
  gc_tcp_item *it = new_item(t, GC_TCP_CLOSED);
  if (!it) return;   /* out of memory: the stream is closed all the same */
  snprintf(it->error, sizeof it->error, "%s", why);
  gc_loop_push(t->l, &it->item);
}

static void read_cb(struct bufferevent *bev, void *arg) {
  gc_tcp *t = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  size_t n = evbuffer_get_length(in);
  if (!n) return;
  gc_tcp_item *it = new_item(t, GC_TCP_DATA);
  char *p = it ? malloc(n) : NULL;
  if (!p) {
    free(it);
    return shut(t, "out of memory");   /* bytes cannot be dropped from a stream */
  }
  evbuffer_remove(in, p, n);
  it->data = p;
  it->len = n;
  gc_loop_push(t->l, &it->item);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  gc_tcp *t = arg;
  if (what & BEV_EVENT_CONNECTED) {
    t->connected = 1;
    bufferevent_set_timeouts(bev, NULL, NULL);
    gc_tcp_item *it = new_item(t, GC_TCP_OPEN);
    if (!it) return shut(t, "out of memory");
    gc_loop_push(t->l, &it->item);
    return;
  }
  if (what & BEV_EVENT_EOF) {
    read_cb(bev, arg);                    /* what came before the close */
    return shut(t, "");
  }
  if (what & BEV_EVENT_TIMEOUT) return shut(t, t->connected ? "timeout" : "connect timeout");
  char why[160];
  unsigned long tls_err = t->tls ? bufferevent_get_openssl_error(bev) : 0;
  if (tls_err) {
    const char *reason = ERR_reason_error_string(tls_err);
    snprintf(why, sizeof why, "TLS: %s", reason ? reason : "handshake failed");
    while (bufferevent_get_openssl_error(bev)) {}
    ERR_clear_error();
    return shut(t, why);
  }
  int dns_err = t->name[0] ? bufferevent_socket_get_dns_error(bev) : 0;
  if (dns_err) {
    snprintf(why, sizeof why, "connect: cannot resolve %s: %s", t->name, evutil_gai_strerror(dns_err));
    return shut(t, why);
  }
  int e = EVUTIL_SOCKET_ERROR();
  snprintf(why, sizeof why, "%s%s", t->connected ? "" : "connect: ", evutil_socket_error_to_string(e));
  shut(t, why);
}

/* An OpenSSL client for one connection: TLS 1.2 or later, the peer verified against cafile
 * (or the system's), and its name (the servername given, else the host's name), or its
 * address when there is no name. */
static SSL *client_ssl(const char *host, int named, const gc_tcp_tls *tls, const char **err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) { *err = "TLS: out of memory"; return NULL; }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int ok = tls->cafile ? SSL_CTX_load_verify_locations(ctx, tls->cafile, NULL) : SSL_CTX_set_default_verify_paths(ctx);
  SSL *ssl = ok == 1 ? SSL_new(ctx) : NULL;
  SSL_CTX_free(ctx);   /* the SSL holds its own reference */
  if (!ssl) {
    ERR_clear_error();
    *err = ok == 1 ? "TLS: out of memory" : "TLS: cannot read the CA file";
    return NULL;
  }
  const char *name = tls->servername ? tls->servername : named ? host : NULL;
  if (name) {
    ok = SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
  } else {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    *err = "TLS: not a name or an address to verify";
    return NULL;
  }
  return ssl;
}

static gc_tcp *connect_with(gc_loop *l, const char *host, int port, uint64_t id, long timeout_ms,
                            const gc_tcp_tls *tls, const char **err) {
  struct sockaddr_storage ss;
  int sslen = (int)sizeof ss;
  char addr[300];
  if (!host || strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (port <= 0 || port > 65535) { *err = "bad port"; return NULL; }
  size_t hlen = strlen(host);
  if (hlen == 0 || hlen >= sizeof ((gc_tcp *)0)->name) { *err = "not an address or a host name"; return NULL; }
  snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  /* not an address: a name, looked up by the loop's resolver (the loop goes on meanwhile) */
  int named = evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0;
  if (named) {
    for (const char *c = host; *c; c++) {
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
            *c == '.' || *c == '_')) {
        *err = "not an address or a host name";
        return NULL;
      }
    }
    if (!gc_loop_dns(l)) { *err = "names cannot be looked up here (no resolver)"; return NULL; }
  }
  gc_tcp *t = calloc(1, sizeof *t);
  if (!t) { *err = "out of memory"; return NULL; }
  t->l = l;
  t->id = id;
  if (named) memcpy(t->name, host, hlen + 1);
  if (tls) {
    SSL *ssl = client_ssl(host, named, tls, err);
    if (!ssl) { free(t); return NULL; }
    t->tls = 1;
    t->bev = bufferevent_openssl_socket_new(gc_loop_base(l), -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!t->bev) SSL_free(ssl);
  } else {
    t->bev = bufferevent_socket_new(gc_loop_base(l), -1, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!t->bev) { free(t); *err = "out of memory"; return NULL; }
  bufferevent_setcb(t->bev, read_cb, NULL, event_cb, t);
  struct timeval tv = { (timeout_ms > 0 ? timeout_ms : 10000) / 1000,
                        ((timeout_ms > 0 ? timeout_ms : 10000) % 1000) * 1000 };
  bufferevent_set_timeouts(t->bev, NULL, &tv);
  bufferevent_enable(t->bev, EV_READ | EV_WRITE);
  int r = named ? bufferevent_socket_connect_hostname(t->bev, gc_loop_dns(l), AF_UNSPEC, host, port)
                : bufferevent_socket_connect(t->bev, (struct sockaddr *)&ss, sslen);
  if (r != 0) {
    /* refused at once (no such route): the CLOSED item says so, as for a later failure */
    shut(t, "connect failed");
  }
  return t;
}

gc_tcp *gc_tcp_connect(gc_loop *l, const char *host, int port, uint64_t id, long timeout_ms,
                       const char **err) {
  return connect_with(l, host, port, id, timeout_ms, NULL, err);
}

gc_tcp *gc_tcp_connect_tls(gc_loop *l, const char *host, int port, uint64_t id, long timeout_ms,
                           const gc_tcp_tls *tls, const char **err) {
  static const gc_tcp_tls none = { NULL, NULL };
  return connect_with(l, host, port, id, timeout_ms, tls ? tls : &none, err);
}

int gc_tcp_write(gc_tcp *t, const void *p, size_t n) {
  if (!t->bev) return -1;
  return bufferevent_write(t->bev, p, n) == 0 ? 0 : -1;
}

int gc_tcp_is_open(const gc_tcp *t) { return t->bev != NULL; }

void gc_tcp_free(gc_tcp *t) {
  if (!t) return;
  if (t->bev) bufferevent_free(t->bev);
  free(t);
}
