/* TLS 1.3 for tesserad connections, on OpenSSL.
 *
 * One SSL_CTX per server, created by the master before it forks (workers
 * inherit it copy-on-write); one SSL per connection. SSL_MODE_RELEASE_BUFFERS
 * makes OpenSSL free a connection's record buffers whenever they drain, so
 * an idle TLS session keeps only its SSL object, not its 2 x 16 KiB buffers.
 *
 * The I/O wrappers map OpenSSL's "want read / want write" onto -EAGAIN: the
 * caller keeps EPOLLIN armed always and EPOLLOUT while output is pending,
 * which covers both (TLS 1.3 has no renegotiation).
 *
 * Threads: an SSL belongs to its connection's loop thread. */
#ifndef TSR_SERVER_TLS_H
#define TSR_SERVER_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* Loads a PEM chain and key; TLS 1.3 only. Returns NULL with a message in
 * err on failure. Free with tls_ctx_free. */
SSL_CTX *tls_ctx_new(const char *cert_path, const char *key_path, char *err,
                     size_t errcap);
void tls_ctx_free(SSL_CTX *ctx);

/* A server-side SSL on an accepted non-blocking fd, or NULL. */
SSL *tls_conn_new(SSL_CTX *ctx, int fd);
void tls_conn_free(SSL *ssl);

/* Advances the handshake: 1 done, 0 in progress (wait for readiness),
 * negative errno-style on failure. */
int tls_handshake(SSL *ssl);

/* Returns bytes read (> 0), 0 at a clean close_notify or EOF, -EAGAIN, or
 * -EIO / -ECONNRESET on failure. */
ssize_t tls_read(SSL *ssl, void *buf, size_t cap);
/* Returns bytes written (> 0, possibly fewer than n), -EAGAIN, or -EIO. */
ssize_t tls_write(SSL *ssl, const void *buf, size_t n);
/* Sends close_notify (best effort, non-blocking). */
void tls_shutdown(SSL *ssl);

#endif
