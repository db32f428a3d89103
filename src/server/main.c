/* tesserad: the tessera server. The master process reads the configuration,
 * reserves the port, forks the worker processes (worker.h says why
 * processes) and supervises them: SIGHUP and SIGTERM are forwarded, a
 * worker that crashes is restarted, and the master exits 0 once every
 * worker has drained after SIGTERM. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/accounts.h"
#include "server/blobs.h"
#include "server/blocks.h"
#include "server/clock.h"
#include "server/comments.h"
#include "server/config.h"
#include "server/conv.h"
#include "server/ds.h"
#include "server/graphs.h"
#include "server/httpd.h"
#include "server/keypackages.h"
#include "server/log.h"
#include "server/media.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "server/posts.h"
#include "server/profiles.h"
#include "server/ratelimit.h"
#include "server/reach.h"
#include "server/reports.h"
#include "server/seen.h"
#include "server/stories.h"
#include "server/timelines.h"
#include "server/tls.h"
#include "server/worker.h"
#include "server/wsd.h"

static cfg conf;
static pid_t *pids;
static int nworkers;

/* "host:port", "[v6]:port" -> address. Returns 0 or -1 with err set. */
static int resolve(const char *listen, worker_addr *out, char *err, size_t cap) {
  char host[256];
  const char *port;
  if (listen[0] == '[') {
    const char *end = strchr(listen, ']');
    if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof host) goto bad;
    memcpy(host, listen + 1, (size_t)(end - listen - 1));
    host[end - listen - 1] = '\0';
    port = end + 2;
  } else {
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
  if (rc != 0) {
    snprintf(err, cap, "listen %s: %s", listen, gai_strerror(rc));
    return -1;
  }
  memcpy(&out->addr, ai->ai_addr, ai->ai_addrlen);
  out->addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
bad:
  snprintf(err, cap, "listen: want host:port, got '%s'", listen);
  return -1;
}

/* Binds (without listening) to reserve the port and learn it when 0 was
 * asked; the workers then bind the same address with SO_REUSEPORT. Only
 * listening sockets receive connections, so this one never does. */
static int reserve_port(worker_addr *a) {
  int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&a->addr, a->addrlen) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  a->addrlen = sizeof a->addr;
  getsockname(fd, (struct sockaddr *)&a->addr, &a->addrlen);
  return fd;
}

static void addr_text(const worker_addr *a, char *out, size_t cap) {
  char host[128], port[16];
  if (getnameinfo((const struct sockaddr *)&a->addr, a->addrlen, host, sizeof host, port,
                  sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    snprintf(out, cap, "?");
    return;
  }
  snprintf(out, cap, a->addr.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static pid_t spawn(int index, const worker_addr *addr, SSL_CTX *tls, int reserve_fd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  /* Child: die with the master; the signals stay blocked for signalfd. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) _exit(1);
  close(reserve_fd);
  if (index == nworkers) { /* the last slot is the delivery service's */
    log_set_tag("ds");
    _exit(ds_main(&conf));
  }
  char tag[16];
  snprintf(tag, sizeof tag, "w%d", index);
  log_set_tag(tag);
  metrics_bind(index);
  _exit(worker_main(&conf, index, addr, tls));
}

/* A worker's modules: started in order, stopped in the reverse order. */
static const struct {
  int (*start)(worker *w);
  void (*stop)(worker *w);
} hooks[] = {
    {stories_worker_start, stories_worker_stop},
    {accounts_worker_start, accounts_worker_stop},
    {conv_worker_start, conv_worker_stop},
    {blobs_worker_start, blobs_worker_stop},
    {media_worker_start, media_worker_stop},
    {timelines_worker_start, timelines_worker_stop},
    {seen_worker_start, seen_worker_stop},
};
#define NHOOKS (sizeof hooks / sizeof hooks[0])

static int hooks_start(worker *w) {
  for (size_t i = 0; i < NHOOKS; i++) {
    int rc = hooks[i].start(w);
    if (rc) {
      while (i--) hooks[i].stop(w);
      return rc;
    }
  }
  return 0;
}

static void hooks_stop(worker *w) {
  for (size_t i = NHOOKS; i--;) hooks[i].stop(w);
}

static void forward(int sig) {
  for (int i = 0; i <= nworkers; i++)
    if (pids[i] > 0) kill(pids[i], sig);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  char err[512];
  int rc = cfg_from_args(&conf, argc, argv, err, sizeof err);
  if (rc == 1) return 0;
  if (rc < 0) {
    fprintf(stderr, "tesserad: %s\n", err);
    return 2;
  }
  if ((rc = log_open(conf.log_file, conf.log_level)) != 0) {
    fprintf(stderr, "tesserad: log %s: %s\n", conf.log_file, strerror(-rc));
    return 2;
  }
  if (mkdir(conf.data_dir, 0700) != 0 && errno != EEXIST) {
    log_error("data dir %s: %s", conf.data_dir, strerror(errno));
    return 2;
  }
  raise_fd_limit();
  nworkers = conf.workers > 0 ? conf.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (nworkers < 1) nworkers = 1;
  if (nworkers > METRICS_MAX_WORKERS) nworkers = METRICS_MAX_WORKERS;

  worker_addr addr;
  if (resolve(conf.listen, &addr, err, sizeof err) != 0) {
    log_error("%s", err);
    return 2;
  }
  int reserve_fd = reserve_port(&addr);
  if (reserve_fd < 0) {
    log_error("bind %s: %s", conf.listen, strerror(-reserve_fd));
    return 2;
  }
  SSL_CTX *tls = NULL;
  if (conf.tls_cert[0]) {
    tls = tls_ctx_new(conf.tls_cert, conf.tls_key, err, sizeof err);
    if (!tls) {
      log_error("TLS: %s", err);
      return 2;
    }
  }
  ratelimit_set_policy(
      RL_REQUEST_ADDR,
      (ratelimit_policy){conf.rate_per_address ? conf.burst_per_address : 0,
                         conf.rate_per_address});
  ratelimit_set_policy(
      RL_REQUEST_ACCOUNT,
      (ratelimit_policy){conf.rate_per_account ? conf.burst_per_account : 0,
                         conf.rate_per_account});
  worker_set_hooks(hooks_start, hooks_stop);
  /* reach, then graphs, before profiles: the first matching route prefix wins.
   * /v1/keypackages shares no prefix with the others. */
  if (httpd_builtin_routes(conf.debug_routes) != 0 || accounts_routes() != 0 ||
      reach_routes() != 0 || graphs_routes() != 0 || posts_routes() != 0 ||
      comments_routes() != 0 || stories_routes() != 0 || notify_routes() != 0 ||
      reports_routes() != 0 || profiles_routes() != 0 || blocks_routes() != 0 ||
      keypackages_routes() != 0 || blobs_routes() != 0 || media_routes() != 0 ||
      wsd_builtin_ops() != 0 || conv_ops() != 0 || (rc = metrics_init(nworkers)) != 0 ||
      (rc = ratelimit_init()) != 0) {
    log_error("startup failed");
    return 2;
  }
  if (worker_prepare_store(&conf) != 0 || ds_prepare_store(&conf) != 0 ||
      blobs_prepare(&conf) != 0 || media_prepare(&conf) != 0)
    return 2;
  if (clock_prepare() != 0) return 2;
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  pids = calloc((size_t)nworkers + 1, sizeof *pids); /* workers, then the DS */
  if (sfd < 0 || !pids) {
    log_error("startup failed: %s", strerror(errno));
    return 2;
  }
  char where[160];
  addr_text(&addr, where, sizeof where);
  log_info("tesserad %s listening on %s (%s), %d workers, data in %s", "0.1.0", where,
           tls ? "TLS 1.3" : "plain", nworkers, conf.data_dir);
  for (int i = 0; i <= nworkers; i++) {
    pids[i] = spawn(i, &addr, tls, reserve_fd);
    if (pids[i] < 0) {
      log_error("fork: %s", strerror(errno));
      forward(SIGKILL);
      return 1;
    }
  }

  bool stopping = false, failed = false;
  uint64_t kill_at = 0;
  int alive = nworkers + 1;
  while (alive > 0) {
    /* Wait for a signal, at most until the SIGKILL deadline. */
    int timeout = -1;
    if (stopping) {
      uint64_t now = mono_ms();
      timeout = kill_at > now ? (int)(kill_at - now) : 0;
    }
    struct pollfd pfd = {.fd = sfd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout);
    if (n == 0 && stopping) {
      log_error("workers did not stop in time: killing them");
      forward(SIGKILL);
      failed = true;
      kill_at = mono_ms() + 60000;
      continue;
    }
    struct signalfd_siginfo si;
    if (n > 0 && read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
      switch (si.ssi_signo) {
      case SIGHUP:
        if ((rc = log_reopen()) != 0) log_error("reopening the log: %s", strerror(-rc));
        forward(SIGHUP);
        break;
      case SIGTERM:
      case SIGINT:
        if (!stopping) {
          log_info("stopping: draining workers");
          stopping = true;
          kill_at = mono_ms() + conf.drain_timeout_ms + 5000;
          forward(SIGTERM);
        }
        break;
      default: break;
      }
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      int idx = -1;
      for (int i = 0; i <= nworkers; i++)
        if (pids[i] == pid) idx = i;
      if (idx < 0) continue;
      pids[idx] = 0;
      bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (stopping || (WIFEXITED(status) && WEXITSTATUS(status) == 2)) {
        if (!clean) failed = true;
        if (!stopping) {
          log_error("worker %d could not start: stopping", idx);
          stopping = true;
          kill_at = mono_ms() + conf.drain_timeout_ms + 5000;
          forward(SIGTERM);
        }
        alive--;
        continue;
      }
      /* A crash: restart this worker, its slot and port share intact. */
      log_error("%s %d (pid %d) died (%s %d): restarting",
                idx == nworkers ? "delivery service" : "worker", idx, (int)pid,
                WIFSIGNALED(status) ? "signal" : "status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      pids[idx] = spawn(idx, &addr, tls, reserve_fd);
      if (pids[idx] < 0) {
        pids[idx] = 0;
        alive--;
        failed = true;
      }
    }
  }
  close(reserve_fd);
  close(sfd);
  free(pids);
  if (tls) tls_ctx_free(tls);
  metrics_free();
  ratelimit_free();
  log_info("stopped");
  log_close();
  return failed ? 1 : 0;
}
