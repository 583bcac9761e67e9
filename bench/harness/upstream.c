/* upstream.c: a cheap fake OpenAI upstream for the gateway benchmarks.
 *
 * One thread, epoll (level-triggered), HTTP/1.1 keep-alive. Any POST is answered with an
 * OpenAI-style SSE stream (chunked): N content chunks " w1".." wN", token k due at
 * t0 + k * pace (t0 = request fully read; k = 1..N; deadline-paced from a min-heap, so a
 * late wake-up does not shift later tokens), then a finish chunk, a usage chunk and
 * "data: [DONE]". N and pace: "max_tokens" in the body and header "x-mock-token-ms", else
 * argv. GET /healthz -> 200; GET /mock/requests -> one {"status":200} per stream in flight.
 *
 *   upstream PORT [TOKENS=64] [TOKEN_MS=20] [HOST=127.0.0.1]
 *
 * Prints "ready PORT" on stdout once listening. SIGTERM/SIGINT: exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 65536
#define INBUF 16384

typedef struct {
    int fd, active;      /* fd open */
    int streaming;       /* 1 while a stream is in flight */
    int k, ntok;         /* next token index (1-based), token count */
    int64_t t0, pace;    /* ns */
    size_t inlen;
    char in[INBUF];
    char *out; size_t outlen, outcap; /* unsent bytes (slow reader) */
    int want_out;
    int close_after;
    unsigned gen;
} conn_t;

static conn_t *conns[MAXFD];
static int ep;
static int def_tokens = 64;
static int64_t def_pace = 20000000;
static int inflight;
static unsigned gen_counter;
static volatile sig_atomic_t stop;

/* min-heap of (deadline, fd) */
typedef struct { int64_t at; int fd; unsigned gen; } ev_t;
static ev_t *heap; static int hn, hcap;

static int64_t now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void hpush(int64_t at, int fd, unsigned gen) {
    if (hn == hcap) { hcap = hcap ? hcap * 2 : 4096; heap = realloc(heap, hcap * sizeof(ev_t)); }
    int i = hn++;
    while (i > 0) { int p = (i - 1) / 2; if (heap[p].at <= at) break; heap[i] = heap[p]; i = p; }
    heap[i].at = at; heap[i].fd = fd; heap[i].gen = gen;
}
static ev_t hpop(void) {
    ev_t top = heap[0], last = heap[--hn];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1; if (c >= hn) break;
        if (c + 1 < hn && heap[c + 1].at < heap[c].at) c++;
        if (heap[c].at >= last.at) break;
        heap[i] = heap[c]; i = c;
    }
    if (hn) heap[i] = last;
    return top;
}

static void conn_close(conn_t *c) {
    if (c->streaming) inflight--;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL; /* heap entries for this fd are dropped lazily (gen check) */
    free(c->out);
    free(c);
}

static void set_out(conn_t *c, int want) {
    if (c->want_out == want) return;
    c->want_out = want;
    struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.fd = c->fd };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* queue or send; returns -1 if the connection was closed */
static int send_bytes(conn_t *c, const char *b, size_t n) {
    if (c->outlen == 0) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) { conn_close(c); return -1; }
            w = 0;
        }
        b += w; n -= (size_t)w;
        if (n == 0) return 0;
    }
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = realloc(c->out, c->outcap);
    }
    memcpy(c->out + c->outlen, b, n); c->outlen += n;
    set_out(c, 1);
    return 0;
}

static int flush_out(conn_t *c) {
    while (c->outlen) {
        ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            conn_close(c); return -1;
        }
        memmove(c->out, c->out + w, c->outlen - (size_t)w); c->outlen -= (size_t)w;
    }
    set_out(c, 0);
    if (c->close_after && !c->streaming) { conn_close(c); return -1; }
    return 0;
}

static const char PRE[] = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,";

static int emit_token(conn_t *c) {
    char ev[512], buf[2048];
    int n, off = 0;
    n = snprintf(ev, sizeof ev, "%s\"delta\":{\"content\":\" w%d\"},\"finish_reason\":null}]}\n\n", PRE, c->k);
    off += snprintf(buf + off, sizeof buf - off, "%x\r\n%s\r\n", n, ev);
    c->k++;
    if (c->k <= c->ntok) return send_bytes(c, buf, (size_t)off) < 0 ? -1 : 1;
    /* last token: finish chunk, usage chunk, [DONE] and the chunked terminator go with it */
    n = snprintf(ev, sizeof ev, "%s\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", PRE);
    off += snprintf(buf + off, sizeof buf - off, "%x\r\n%s\r\n", n, ev);
    n = snprintf(ev, sizeof ev, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", c->ntok, c->ntok + 1);
    off += snprintf(buf + off, sizeof buf - off, "%x\r\n%s\r\n", n, ev);
    off += snprintf(buf + off, sizeof buf - off, "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    c->streaming = 0; inflight--;
    if (send_bytes(c, buf, (size_t)off) < 0) return -1;
    if (c->close_after && c->outlen == 0) { conn_close(c); return -1; }
    return 0;
}

static int simple_reply(conn_t *c, const char *status, const char *body) {
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n\r\n%s",
                     status, strlen(body), body);
    return send_bytes(c, buf, (size_t)n);
}

static const char *find_hdr(const char *h, size_t hlen, const char *name) {
    size_t nl = strlen(name);
    const char *p = h, *end = h + hlen;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) break;
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1; while (*p == ' ') p++;
            return p;
        }
        p = e + 1;
    }
    return NULL;
}

/* try to handle one complete request in c->in; returns 1 handled, 0 need more, -1 closed */
static int handle_request(conn_t *c) {
    char *he = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!he) {
        if (c->inlen >= INBUF) { conn_close(c); return -1; }
        return 0;
    }
    size_t hlen = (size_t)(he - c->in) + 4;
    const char *cl = find_hdr(c->in, hlen, "content-length");
    size_t blen = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
    if (hlen + blen > INBUF) { conn_close(c); return -1; }
    if (c->inlen < hlen + blen) return 0;
    const char *conn_hdr = find_hdr(c->in, hlen, "connection");
    c->close_after = conn_hdr && strncasecmp(conn_hdr, "close", 5) == 0;
    if (strncmp(c->in, "GET ", 4) == 0) {
        int r;
        if (strncmp(c->in + 4, "/mock/requests", 14) == 0) {
            char body[8000]; int off = 0;
            body[off++] = '[';
            for (int i = 0; i < inflight && off < 7900; i++)
                off += snprintf(body + off, sizeof body - off, "%s{\"status\":200}", i ? "," : "");
            body[off++] = ']'; body[off] = 0;
            r = simple_reply(c, "200 OK", body);
        } else {
            r = simple_reply(c, "200 OK", "{\"status\":\"ok\"}");
        }
        if (r < 0) return -1;
    } else {
        int ntok = def_tokens; int64_t pace = def_pace;
        const char *tm = find_hdr(c->in, hlen, "x-mock-token-ms");
        if (tm) pace = (int64_t)(strtod(tm, NULL) * 1e6);
        char *body = c->in + hlen;
        char save = body[blen]; body[blen] = 0; /* in[] has room: hlen+blen <= INBUF, read cap leaves 1 */
        char *mt = strstr(body, "\"max_tokens\"");
        if (mt) { mt = strchr(mt + 12, ':'); if (mt) { int v = atoi(mt + 1); if (v > 0) ntok = v; } }
        body[blen] = save;
        static const char H[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
        if (send_bytes(c, H, sizeof H - 1) < 0) return -1;
        c->streaming = 1; inflight++;
        c->k = 1; c->ntok = ntok; c->pace = pace; c->t0 = now_ns();
        c->gen = ++gen_counter;
        hpush(c->t0 + pace, c->fd, c->gen);
    }
    size_t used = hlen + blen;
    memmove(c->in, c->in + used, c->inlen - used); c->inlen -= used;
    return 1;
}

static void on_read(conn_t *c) {
    ssize_t r = read(c->fd, c->in + c->inlen, INBUF - 1 - c->inlen);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        conn_close(c); return;
    }
    c->inlen += (size_t)r;
    while (!c->streaming && c->inlen) {
        int h = handle_request(c);
        if (h <= 0) return;
        if (!conns[c->fd]) return;
        if (c->close_after && !c->streaming && c->outlen == 0) { conn_close(c); return; }
    }
    if (c->streaming && c->inlen >= INBUF - 1) c->inlen = 0; /* ignore junk during a stream */
}

static void on_sig(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: upstream PORT [TOKENS] [TOKEN_MS] [HOST]\n"); return 2; }
    int port = atoi(argv[1]);
    if (argc > 2) def_tokens = atoi(argv[2]);
    if (argc > 3) def_pace = (int64_t)(atof(argv[3]) * 1e6);
    const char *host = argc > 4 ? argv[4] : "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_sig };
    sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("bind/listen"); return 1; }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = { .events = EPOLLIN, .data.fd = ls };
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &le);
    printf("ready %d\n", port); fflush(stdout);

    struct epoll_event evs[1024];
    while (!stop) {
        int timeout = -1;
        if (hn) {
            int64_t d = heap[0].at - now_ns();
            timeout = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
        }
        int n = epoll_wait(ep, evs, 1024, timeout);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (cfd >= MAXFD) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *c = calloc(1, sizeof *c);
                    c->fd = cfd; c->active = 1;
                    conns[cfd] = c;
                    struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = cfd };
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e);
                }
                continue;
            }
            conn_t *c = conns[fd];
            if (!c) continue;
            if (evs[i].events & EPOLLOUT) { if (flush_out(c) < 0) continue; }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_read(c);
        }
        /* tokens due (within 0.2 ms: one wake-up serves them together) */
        int64_t t = now_ns() + 200000;
        while (hn && heap[0].at <= t) {
            ev_t e = hpop();
            conn_t *c = conns[e.fd];
            if (!c || !c->streaming || c->gen != e.gen) continue; /* closed or fd reused */
            if (emit_token(c) == 1) hpush(c->t0 + (int64_t)c->k * c->pace, c->fd, c->gen);
        }
    }
    return 0;
}
