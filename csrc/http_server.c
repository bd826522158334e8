#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "files.h"
#include "http_guard.h"
#include "http_server.h"

struct gc_sreq {
  gc_io_item item;                 /* first: the loop queues this */
  struct evhttp_request *req;      /* NULL once answered, or when its server is gone */
  gc_server *srv;
  struct gc_sreq *prev, *next;     /* the server's pending list */
  int tag;
};

struct gc_server {
  gc_loop *loop;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  SSL_CTX *ssl;
  gc_guard *guard;                 /* caps, deadlines, accept backoff */
  int rootfd;                      /* files_dir, or -1 */
  char *prefix;
  size_t prefix_len;
  gc_sreq *pending;
  int tag;
};

gc_sreq *gc_sreq_of_item(gc_io_item *it) { return (gc_sreq *)(void *)it; }

static void unlink_pending(gc_sreq *r) {
  if (!r->srv) return;
  if (r->prev) r->prev->next = r->next;
  else r->srv->pending = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  r->srv = NULL;
}

/* ---- files --------------------------------------------------------------------------- */

static void serve_file(gc_server *s, struct evhttp_request *req, const char *path) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
    evhttp_add_header(out, "Allow", "GET, HEAD");
    gc_guard_idle(s->guard, req);
    evhttp_send_error(req, 405, NULL);
    return;
  }
  struct stat st;
  const char *rel = path + s->prefix_len;
  int fd = gc_files_open(s->rootfd, rel, strlen(rel), &st);
  if (fd < 0) {
    gc_guard_idle(s->guard, req);
    evhttp_send_error(req, HTTP_NOTFOUND, NULL);
    return;
  }
  evhttp_add_header(out, "Content-Type", gc_files_type(rel));
  struct evbuffer *body = evbuffer_new();
  if (!body) {
    close(fd);
    gc_guard_idle(s->guard, req);
    evhttp_send_error(req, HTTP_INTERNAL, NULL);
    return;
  }
  if (cmd == EVHTTP_REQ_HEAD || st.st_size == 0) {
    close(fd);
    if (cmd == EVHTTP_REQ_HEAD) {
      char len[32];
      snprintf(len, sizeof len, "%lld", (long long)st.st_size);
      evhttp_add_header(out, "Content-Length", len);
    }
  } else if (evbuffer_add_file(body, fd, 0, st.st_size) != 0) {  /* takes fd */
    evbuffer_free(body);
    gc_guard_idle(s->guard, req);
    evhttp_send_error(req, HTTP_INTERNAL, NULL);
    return;
  }
  gc_guard_idle(s->guard, req);
  evhttp_send_reply(req, HTTP_OK, NULL, body);
  evbuffer_free(body);
}

/* ---- requests ------------------------------------------------------------------------ */

static void drop_sreq(gc_io_item *it) { gc_sreq_free(gc_sreq_of_item(it)); }

static void on_request(struct evhttp_request *req, void *arg) {
  gc_server *s = arg;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (!path) path = "/";
  gc_guard_busy(s->guard, req);     /* read whole: no deadline while it is answered */
  if (s->rootfd >= 0 && strncmp(path, s->prefix, s->prefix_len) == 0) {
    serve_file(s, req, path);
    return;
  }
  gc_sreq *r = calloc(1, sizeof *r);
  if (!r) {
    gc_guard_idle(s->guard, req);
    evhttp_send_error(req, 503, NULL);
    return;
  }
  r->item.kind = GC_IO_REQUEST;
  r->item.drop = drop_sreq;
  r->req = req;
  r->srv = s;
  r->tag = s->tag;
  r->next = s->pending;
  if (s->pending) s->pending->prev = r;
  s->pending = r;
  gc_loop_push(s->loop, &r->item);
}

static const char *const methods[] = {
  "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH",
};

const char *gc_sreq_method(const gc_sreq *r) {
  if (!r->req) return "";
  unsigned c = (unsigned)evhttp_request_get_command(r->req);
  for (unsigned i = 0; i < sizeof methods / sizeof *methods; i++)
    if (c == (1u << i)) return methods[i];
  return "";
}

const char *gc_sreq_uri(const gc_sreq *r) { return r->req ? evhttp_request_get_uri(r->req) : ""; }

const char *gc_sreq_header(const gc_sreq *r, const char *name) {
  return r->req ? evhttp_find_header(evhttp_request_get_input_headers(r->req), name) : NULL;
}

void gc_sreq_headers(const gc_sreq *r, void (*fn)(void *, const char *, const char *), void *arg) {
  if (!r->req) return;
  struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
  for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) fn(arg, kv->key, kv->value);
}

const char *gc_sreq_body(gc_sreq *r, size_t *len) {
  *len = 0;
  if (!r->req) return "";
  struct evbuffer *b = evhttp_request_get_input_buffer(r->req);
  *len = evbuffer_get_length(b);
  if (*len == 0) return "";
  return (const char *)evbuffer_pullup(b, -1);
}

void gc_sreq_peer(const gc_sreq *r, const char **host, int *port) {
  *host = "";
  *port = 0;
  struct evhttp_connection *c = r->req ? evhttp_request_get_connection(r->req) : NULL;
  if (!c) return;
  char *h = NULL;
  ev_uint16_t p = 0;
  evhttp_connection_get_peer(c, &h, &p);
  *host = h ? h : "";
  *port = p;
}

int gc_sreq_pending(const gc_sreq *r) { return r->req != NULL; }

int gc_sreq_tag(const gc_sreq *r) { return r->tag; }

int gc_sreq_respond(gc_sreq *r, int status, const char *const *headers, size_t npairs,
                    const char *body, size_t len) {
  if (!r->req) return -1;
  struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
  for (size_t i = 0; i < npairs; i++) evhttp_add_header(out, headers[2 * i], headers[2 * i + 1]);
  struct evbuffer *b = NULL;
  if (len) {
    b = evbuffer_new();
    if (b) evbuffer_add(b, body, len);
  }
  if (r->srv) gc_guard_idle(r->srv->guard, r->req);
  evhttp_send_reply(r->req, status, NULL, b);
  if (b) evbuffer_free(b);
  r->req = NULL;
  unlink_pending(r);
  return 0;
}

int gc_sreq_reset(gc_sreq *r) {
  if (!r->req) return -1;
  struct evhttp_connection *c = evhttp_request_get_connection(r->req);
  struct evhttp_request *req = r->req;
  r->req = NULL;
  unlink_pending(r);
  if (c) evhttp_connection_free(c);   /* frees the request with it */
  else evhttp_request_free(req);      /* the client left already */
  return 0;
}

void gc_sreq_free(gc_sreq *r) {
  if (!r) return;
  if (r->req) gc_sreq_respond(r, 500, NULL, 0, NULL, 0);
  unlink_pending(r);
  free(r);
}

/* ---- the server ---------------------------------------------------------------------- */

static SSL_CTX *tls_context(const char *cert, const char *key, const char **err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) { *err = "TLS: out of memory"; return NULL; }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) *err = "TLS: cannot read the certificate chain";
  else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) *err = "TLS: cannot read the private key";
  else if (SSL_CTX_check_private_key(ctx) != 1) *err = "TLS: the key does not match the certificate";
  else return ctx;
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

gc_server *gc_server_new(gc_loop *l, const gc_server_opts *o, const char **err) {
  gc_server *s = calloc(1, sizeof *s);
  if (!s) { *err = "out of memory"; return NULL; }
  s->loop = l;
  s->rootfd = -1;
  s->tag = o->tag;
  s->http = evhttp_new(gc_loop_base(l));
  if (!s->http) { *err = "out of memory"; goto fail; }
  if (o->cert_file || o->key_file) {
    if (!o->cert_file || !o->key_file) { *err = "TLS needs both a certificate and a key"; goto fail; }
    s->ssl = tls_context(o->cert_file, o->key_file, err);
    if (!s->ssl) goto fail;
  }
  if (o->files_dir) {
    s->rootfd = open(o->files_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->rootfd < 0) { *err = "files: cannot open the folder"; goto fail; }
    const char *pre = o->files_prefix ? o->files_prefix : "/files/";
    s->prefix = strdup(pre);
    if (!s->prefix) { *err = "out of memory"; goto fail; }
    s->prefix_len = strlen(pre);
  }
  long tmo = o->timeout_ms > 0 ? o->timeout_ms : 10000;
  struct timeval tv = { tmo / 1000, (tmo % 1000) * 1000 };
  evhttp_set_timeout_tv(s->http, &tv);
  evhttp_set_max_body_size(s->http, (ev_ssize_t)(o->max_body ? o->max_body : (size_t)4 << 20));
  evhttp_set_max_headers_size(s->http, (ev_ssize_t)(o->max_headers ? o->max_headers : 16384));
  evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                          EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                          EVHTTP_REQ_OPTIONS);
  evhttp_set_default_content_type(s->http, "application/json");
  evhttp_set_gencb(s->http, on_request, s);
  s->bound = evhttp_bind_socket_with_handle(s->http, o->host ? o->host : "127.0.0.1",
                                            (ev_uint16_t)o->port);
  if (!s->bound) { *err = "cannot listen on that address and port (in use, or not an address)"; goto fail; }
  gc_guard_opts g = { o->max_conns, o->max_per_addr, o->deadline_ms };
  s->guard = gc_guard_new(gc_loop_base(l), s->http, s->bound, s->ssl, &g);
  if (!s->guard) { *err = "out of memory"; goto fail; }
  return s;
fail:
  gc_server_free(s);
  return NULL;
}

void gc_server_stats(const gc_server *s, gc_guard_stats *out) { gc_guard_get_stats(s->guard, out); }

int gc_server_port(const gc_server *s) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  evutil_socket_t fd = evhttp_bound_socket_get_fd(s->bound);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

void gc_server_free(gc_server *s) {
  if (!s) return;
  while (s->pending) {
    gc_sreq *r = s->pending;
    if (r->req) {
      evhttp_send_error(r->req, 503, NULL);
      r->req = NULL;
    }
    unlink_pending(r);   /* the request stays with whoever holds it, answered */
  }
  gc_guard_free(s->guard);          /* first: the connections evhttp_free closes are not counted */
  if (s->http) evhttp_free(s->http);
  if (s->ssl) SSL_CTX_free(s->ssl);
  if (s->rootfd >= 0) close(s->rootfd);
  free(s->prefix);
  free(s);
}
