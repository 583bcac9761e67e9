/* load.c: a cheap load client for the gateway benchmarks.
 *
 * Opens N streams to 127.0.0.1:PORT, stream i started at t0 + SPREAD * i / N (source
 * addresses 127.0.0.2 .. 127.0.0.17 in turn), each a POST /v1/chat/completions (stream:
 * true, max_tokens TOKENS, "Connection: close"). Decodes the chunked (or close-delimited)
 * SSE response and timestamps (CLOCK_MONOTONIC, after each read) every content event: a
 * "data: {" line whose "content" is a non-empty string. A stream ends at "data: [DONE]"
 * (then closed with RST, as bench/gateway.py's client does), at EOF or at the deadline
 * t0 + SPREAD + TOKENS * TOKEN_MS + SLACK.
 *
 *   load PORT N SPREAD_S MODEL API_KEY [TOKENS=64] [TOKEN_MS=20] [SLACK_S=12] [TICK_US=0]
 *
 * TICK_US > 0: after each batch of events, sleep until the next TICK_US boundary (fewer
 * wake-ups, far less CPU; timestamps then have TICK_US resolution).
 *
 * stdout: JSON {"streams": N, "t0_s": T0 (CLOCK_MONOTONIC, s: Python's time.perf_counter()
 * clock on Linux), "cpu_s": own CPU, "wall_s", "runs": [{"sent_ms", "times_ms"
 * (relative to t0), "done", "status", "error", "text" (the content concatenated)}]}.
 * stderr: a one-line summary.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SOURCES 16
#define LINECAP 4096
#define TEXTCAP 4096

enum { S_IDLE, S_CONNECTING, S_HEAD, S_BODY, S_END };
enum { C_SIZE, C_DATA, C_CRLF, C_TRAILER, C_RAW };

typedef struct {
    int fd, state, status, chunked, cstate, done;
    long csize;
    int64_t sent;
    int64_t *times; int nt, capt;
    char head[4096]; int hlen;
    char line[LINECAP]; int llen;
    char text[TEXTCAP]; int tlen;
    char err[160];
} stream_t;

static stream_t *S;
static int N, ep, port;
static char req[4096]; static int reqlen;
static int64_t T0;
static volatile sig_atomic_t stop;

static int64_t now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void finish(stream_t *s, const char *err, int rst) {
    if (s->state == S_END) return;
    if (err && !s->err[0]) snprintf(s->err, sizeof s->err, "%s", err);
    if (s->fd >= 0) {
        if (rst) { struct linger l = { 1, 0 }; setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l); }
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd); s->fd = -1;
    }
    s->state = S_END;
}

static void start(int i) {
    stream_t *s = &S[i];
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) { s->state = S_END; snprintf(s->err, sizeof s->err, "socket: %s", strerror(errno)); return; }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % SOURCES));
    bind(s->fd, (struct sockaddr *)&src, sizeof src);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(0x7f000001u);
    int r = connect(s->fd, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno != EINPROGRESS) {
        char e[160]; snprintf(e, sizeof e, "connect: %s", strerror(errno)); finish(s, e, 0); return;
    }
    s->state = S_CONNECTING;
    struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void on_line(stream_t *s, int64_t t) {
    char *l = s->line; int n = s->llen;
    if (n && l[n - 1] == '\r') n--;
    l[n] = 0;
    if (strncmp(l, "data:", 5) != 0) return;
    char *p = l + 5; while (*p == ' ') p++;
    if (strncmp(p, "[DONE]", 6) == 0) { s->done = 1; return; }
    if (*p != '{') return;
    char *c = strstr(p, "\"content\"");
    if (!c) { if (strstr(p, "\"error\"")) snprintf(s->err, sizeof s->err, "%.150s", p); return; }
    c += 9; while (*c == ' ') c++;
    if (*c != ':') return;
    c++; while (*c == ' ') c++;
    if (*c != '"' || c[1] == '"') return; /* null or empty content */
    c++;
    if (s->nt == s->capt) { s->capt = s->capt ? s->capt * 2 : 80; s->times = realloc(s->times, (size_t)s->capt * sizeof(int64_t)); }
    s->times[s->nt++] = t;
    while (*c && *c != '"' && s->tlen < TEXTCAP - 1) {
        if (*c == '\\' && c[1]) { s->text[s->tlen++] = *c++; }
        s->text[s->tlen++] = *c++;
    }
}

static void body_bytes(stream_t *s, const char *b, long n, int64_t t) {
    for (long i = 0; i < n; i++) {
        char ch = b[i];
        if (ch == '\n') { on_line(s, t); s->llen = 0; if (s->done) return; }
        else if (s->llen < LINECAP - 1) s->line[s->llen++] = ch;
    }
}

/* feed response bytes; returns 1 when the stream is complete */
static int feed(stream_t *s, const char *b, long n, int64_t t) {
    if (s->state == S_HEAD) {
        long take = n < (long)sizeof s->head - 1 - s->hlen ? n : (long)sizeof s->head - 1 - s->hlen;
        memcpy(s->head + s->hlen, b, (size_t)take); s->hlen += (int)take; s->head[s->hlen] = 0;
        char *e = strstr(s->head, "\r\n\r\n");
        if (!e) { if (s->hlen >= (int)sizeof s->head - 1) { finish(s, "headers too long", 1); return 1; } return 0; }
        long hl = (long)(e - s->head) + 4;
        long rest_off = hl - (s->hlen - take); /* offset in b where the body starts */
        s->status = atoi(s->head + 9);
        char *h = s->head; 
        for (char *q = h; q < e; q++) if (*q >= 'A' && *q <= 'Z') *q += 32;
        s->chunked = strstr(h, "transfer-encoding: chunked") != NULL;
        s->cstate = s->chunked ? C_SIZE : C_RAW; s->csize = 0;
        s->state = S_BODY;
        b += rest_off; n -= rest_off;
        if (s->status != 200) { snprintf(s->err, sizeof s->err, "HTTP %d", s->status); }
    }
    while (n > 0 && !s->done) {
        switch (s->cstate) {
        case C_RAW: body_bytes(s, b, n, t); n = 0; break;
        case C_SIZE: {
            char ch = *b++; n--;
            if (ch == '\n') { if (s->csize == 0) { s->cstate = C_TRAILER; return 1; } s->cstate = C_DATA; }
            else if (ch >= '0' && ch <= '9') s->csize = s->csize * 16 + (ch - '0');
            else if (ch >= 'a' && ch <= 'f') s->csize = s->csize * 16 + (ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F') s->csize = s->csize * 16 + (ch - 'A' + 10);
            else if (ch == ';') s->csize |= 0; /* extensions: digits end here; ignore rest */
            break;
        }
        case C_DATA: {
            long k = n < s->csize ? n : s->csize;
            body_bytes(s, b, k, t); b += k; n -= k; s->csize -= k;
            if (s->csize == 0) s->cstate = C_CRLF;
            break;
        }
        case C_CRLF: { char ch = *b++; n--; if (ch == '\n') { s->cstate = C_SIZE; s->csize = 0; } break; }
        default: n = 0;
        }
    }
    return s->done;
}

static int cmp64(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double pctl(double *v, int n, double q) { if (!n) return -1; int i = (int)(n * q); if (i >= n) i = n - 1; return v[i]; }

static void on_sig(int x) { (void)x; stop = 1; }

int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: load PORT N SPREAD_S MODEL API_KEY [TOKENS] [TOKEN_MS] [SLACK_S]\n"); return 2; }
    port = atoi(argv[1]); N = atoi(argv[2]);
    double spread = atof(argv[3]);
    const char *model = argv[4], *key = argv[5];
    int tokens = argc > 6 ? atoi(argv[6]) : 64;
    double token_ms = argc > 7 ? atof(argv[7]) : 20;
    double slack = argc > 8 ? atof(argv[8]) : 12;
    int64_t tick = argc > 9 ? (int64_t)(atof(argv[9]) * 1000) : 0;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_sig };
    sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);
    struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl); rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);

    char body[512];
    int bl = snprintf(body, sizeof body, "{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stream\": true, \"max_tokens\": %d}", model, tokens);
    reqlen = snprintf(req, sizeof req,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Accept: text/event-stream\r\nAuthorization: Bearer %s\r\nConnection: close\r\n"
        "Content-Length: %d\r\n\r\n%s", key, bl, body);

    S = calloc((size_t)N, sizeof *S);
    for (int i = 0; i < N; i++) { S[i].fd = -1; S[i].state = S_IDLE; }
    ep = epoll_create1(EPOLL_CLOEXEC);
    static char buf[65536];
    struct epoll_event evs[1024];
    T0 = now_ns();
    int64_t spread_ns = (int64_t)(spread * 1e9);
    int64_t deadline = T0 + spread_ns + (int64_t)(tokens * token_ms * 1e6) + (int64_t)(slack * 1e9);
    int next = 0, ended = 0;
    while (!stop && ended < N) {
        int64_t t = now_ns();
        if (t >= deadline) break;
        while (next < N && T0 + (N > 1 ? spread_ns * next / N : 0) <= t) start(next++);
        int64_t wake = deadline;
        if (next < N) { int64_t at = T0 + spread_ns * next / N; if (at < wake) wake = at; }
        int64_t d = wake - now_ns();
        int timeout = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
        int n;
        if (tick > 0) {
            int64_t nt = now_ns(), at = (nt - T0) / tick * tick + tick + T0;
            if (at > wake) at = wake;
            if (at > nt) { struct timespec ts = { (at - nt) / 1000000000LL, (at - nt) % 1000000000LL }; nanosleep(&ts, NULL); }
            n = epoll_wait(ep, evs, 1024, 0);
        } else {
            n = epoll_wait(ep, evs, 1024, timeout);
        }
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); break; }
        for (int k = 0; k < n; k++) {
            stream_t *s = &S[evs[k].data.u32];
            if (s->state == S_CONNECTING) {
                int e = 0; socklen_t el = sizeof e;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e) { char m[160]; snprintf(m, sizeof m, "connect: %s", strerror(e)); finish(s, m, 0); ended++; continue; }
                ssize_t w = send(s->fd, req, (size_t)reqlen, MSG_NOSIGNAL);
                if (w != reqlen) { finish(s, "short write", 1); ended++; continue; }
                s->sent = now_ns();
                s->state = S_HEAD;
                struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[k].data.u32 };
                epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                continue;
            }
            if (s->state != S_HEAD && s->state != S_BODY) continue;
            ssize_t r = read(s->fd, buf, sizeof buf);
            int64_t tr = now_ns();
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                int complete = s->state == S_BODY && (s->cstate == C_RAW || s->cstate == C_TRAILER);
                finish(s, r < 0 ? strerror(errno) : complete ? NULL : "closed early", 0);
                if (!s->done && !s->err[0] && !complete) snprintf(s->err, sizeof s->err, "closed early");
                if (complete) s->done = 1;
                ended++; continue;
            }
            if (feed(s, buf, r, tr)) { s->done = 1; finish(s, NULL, 1); ended++; }
        }
    }
    int64_t tend = now_ns();
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    for (int i = 0; i < N; i++) if (S[i].state != S_END) { if (S[i].state == S_IDLE) snprintf(S[i].err, sizeof S[i].err, "not started"); finish(&S[i], "timed out", 1); }

    /* output */
    printf("{\"streams\": %d, \"spread_s\": %g, \"t0_s\": %.9f, \"cpu_s\": %.6f, \"wall_s\": %.6f, \"runs\": [", N, spread, T0 / 1e9, cpu, (tend - T0) / 1e9);
    double *ttft = malloc(sizeof(double) * (size_t)N), *gaps = malloc(sizeof(double) * (size_t)N * (size_t)(tokens + 4) + 8);
    int nttft = 0, ngaps = 0, ok = 0, errs = 0, ngapcap = N * (tokens + 4);
    for (int i = 0; i < N; i++) {
        stream_t *s = &S[i];
        printf("%s\n{\"sent_ms\": %.3f, \"done\": %d, \"status\": %d, \"error\": \"", i ? "," : "", s->sent ? (s->sent - T0) / 1e6 : -1.0, s->done, s->status);
        for (char *p = s->err; *p; p++) { if (*p == '"' || *p == '\\') putchar('\\'); putchar((unsigned char)*p < 32 ? ' ' : *p); }
        printf("\", \"text\": \"");
        fwrite(s->text, 1, (size_t)s->tlen, stdout);
        printf("\", \"times_ms\": [");
        for (int k = 0; k < s->nt; k++) printf("%s%.3f", k ? "," : "", (s->times[k] - T0) / 1e6);
        printf("]}");
        if (s->nt) ttft[nttft++] = (s->times[0] - s->sent) / 1e6;
        for (int k = 1; k < s->nt && ngaps < ngapcap; k++) gaps[ngaps++] = (s->times[k] - s->times[k - 1]) / 1e6;
        if (s->done && !s->err[0] && s->nt == tokens) ok++;
        if (s->err[0] || !s->done) errs++;
    }
    printf("]}\n");
    qsort(ttft, (size_t)nttft, sizeof(double), cmp64);
    qsort(gaps, (size_t)ngaps, sizeof(double), cmp64);
    fprintf(stderr, "load: %d streams, ok %d, errors %d, ttft p50 %.1f p99 %.1f ms, gap p50 %.2f p99 %.2f max %.1f ms, cpu %.3f s, wall %.2f s\n",
            N, ok, errs, pctl(ttft, nttft, .5), pctl(ttft, nttft, .99), pctl(gaps, ngaps, .5), pctl(gaps, ngaps, .99),
            ngaps ? gaps[ngaps - 1] : -1, cpu, (tend - T0) / 1e9);
    return 0;
}
