#include "server/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

static void last_error(char *err, size_t cap, const char *what) {
  char msg[256];
  ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
  snprintf(err, cap, "%s: %s", what, msg);
}

SSL_CTX *tls_ctx_new(const char *cert_path, const char *key_path, char *err,
                     size_t errcap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    last_error(err, errcap, "SSL_CTX_new");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  /* Release buffers while idle; partial writes and moving buffers because
   * unsent output is copied into the connection's own queue. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* Session tickets would cost a write per handshake; clients reconnect
   * rarely, so skip them. */
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
    last_error(err, errcap, cert_path);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
    last_error(err, errcap, key_path);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    last_error(err, errcap, "key does not match certificate");
    goto fail;
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

void tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

SSL *tls_conn_new(SSL_CTX *ctx, int fd) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl) return NULL;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

void tls_conn_free(SSL *ssl) { SSL_free(ssl); }

static int map_error(SSL *ssl, int rc) {
  int e = SSL_get_error(ssl, rc);
  switch (e) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE: return -EAGAIN;
  case SSL_ERROR_ZERO_RETURN: return 0;
  case SSL_ERROR_SYSCALL:
    ERR_clear_error();
    return errno == ECONNRESET ? -ECONNRESET : -EIO;
  default: ERR_clear_error(); return -EIO;
  }
}

int tls_handshake(SSL *ssl) {
  int rc = SSL_do_handshake(ssl);
  if (rc == 1) return 1;
  int e = map_error(ssl, rc);
  if (e == -EAGAIN) return 0;
  return e == 0 ? -EIO : e;
}

ssize_t tls_read(SSL *ssl, void *buf, size_t cap) {
  size_t got = 0;
  int rc = SSL_read_ex(ssl, buf, cap, &got);
  if (rc == 1) return (ssize_t)got;
  return map_error(ssl, rc);
}

ssize_t tls_write(SSL *ssl, const void *buf, size_t n) {
  size_t put = 0;
  int rc = SSL_write_ex(ssl, buf, n, &put);
  if (rc == 1) return (ssize_t)put;
  int e = map_error(ssl, rc);
  return e == 0 ? -EIO : e;
}

void tls_shutdown(SSL *ssl) {
  if (SSL_is_init_finished(ssl)) SSL_shutdown(ssl);
  ERR_clear_error();
}
