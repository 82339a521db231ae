/* appload: requests per second of an app-server speaking the socket guide's
 * protocol, one request per connection (the guide's server closes after its
 * response).
 *
 *   appload HOST PORT SECONDS CONCURRENCY REQUEST_FILE RESPONSE_FILE
 *
 * CONCURRENCY connections are kept in flight with one epoll: each connects,
 * sends the request, reads until the server closes, checks the bytes equal
 * RESPONSE_FILE, and is replaced by a new one. After a 1 s warm-up it counts
 * for SECONDS and prints one JSON line: {"rps":..., "ok":..., "errors":...}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct slot { int fd; size_t sent; size_t got; int bad; };

static char *req, *resp; static size_t req_len, resp_len;
static struct sockaddr_in addr;

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    char *buf = malloc(n ? n : 1);
    if (fread(buf, 1, n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f); *len = n; return buf;
}

static void start(int ep, struct slot *s, int i) {
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    s->sent = s->got = 0; s->bad = 0;
    int one = 1; setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        s->bad = 1;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = i };
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: appload HOST PORT SECONDS CONCURRENCY REQUEST_FILE RESPONSE_FILE\n"); return 2; }
    addr.sin_family = AF_INET; addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    double secs = atof(argv[3]); int conc = atoi(argv[4]);
    req = slurp(argv[5], &req_len); resp = slurp(argv[6], &resp_len);
    int ep = epoll_create1(0);
    struct slot *slots = calloc(conc, sizeof *slots);
    for (int i = 0; i < conc; i++) start(ep, &slots[i], i);
    struct epoll_event evs[256]; char buf[65536];
    double t0 = now(), count_from = t0 + 1.0, end = count_from + secs;
    long ok = 0, errors = 0;
    while (now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            int i = evs[k].data.u32; struct slot *s = &slots[i];
            int done = 0;
            if (s->sent < req_len && (evs[k].events & EPOLLOUT)) {
                ssize_t w = send(s->fd, req + s->sent, req_len - s->sent, MSG_NOSIGNAL);
                if (w > 0) s->sent += w;
                else if (w < 0 && errno != EAGAIN) { s->bad = 1; done = 1; }
                if (s->sent == req_len) {
                    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = i };
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                }
            }
            if (!done && (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                for (;;) {
                    ssize_t r = recv(s->fd, buf, sizeof buf, 0);
                    if (r > 0) {
                        if (s->got + r > resp_len || memcmp(resp + s->got, buf, r) != 0) s->bad = 1;
                        s->got += r;
                    } else if (r == 0) { done = 1; break; }
                    else if (errno == EAGAIN) break;
                    else { s->bad = 1; done = 1; break; }
                }
            }
            if (done) {
                int good = !s->bad && s->got == resp_len;
                if (now() >= count_from) { if (good) ok++; else errors++; }
                close(s->fd);
                start(ep, s, i);
            }
        }
    }
    printf("{\"rps\": %.1f, \"ok\": %ld, \"errors\": %ld, \"seconds\": %.1f, \"concurrency\": %d}\n",
           ok / secs, ok, errors, secs, conc);
    return ok > 0 ? 0 : 1;
}
