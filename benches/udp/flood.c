/* benches/udp/flood.c: UDP echo load generator.
 *
 *   flood HOST PORT SECONDS [SIZE=64] [WINDOW=32] [SOCKETS=4]
 *
 * Opens SOCKETS connected UDP sockets to HOST:PORT (connected, so that only
 * the server's replies arrive and ICMP errors surface) and keeps WINDOW
 * datagrams of SIZE bytes in flight on each: every reply is answered with a
 * new datagram. Sends and receives are batched (sendmmsg, recvmmsg) and one
 * epoll watches every socket, so the generator spends less per datagram than
 * the servers it measures. Where it can (SIZE up to 32,500 bytes), it sends
 * each batch of a socket with one UDP_SEGMENT (GSO) send: the kernel cuts it
 * into datagrams of SIZE bytes, delivered one by one, so the server sees the
 * same datagrams as from sendmmsg, but the generator crosses the IP stack
 * once per batch (about 15% less CPU for it at 64 bytes). FLOOD_GSO=0 turns
 * that off.
 *
 * Each datagram carries in its first 8 bytes its socket's index (top 24 bits)
 * and a sequence number (low 40 bits), then a fixed pattern. Every reply is
 * checked byte for byte: a wrong length, pattern, socket or an unsent
 * sequence number is counted as mismatched. A reply to a datagram already
 * counted as lost, or a second reply to the same one, is counted as late.
 *
 * Loss: a socket that gets no reply for 50 ms counts what it has in flight
 * as lost and sends a fresh window, so losses never stall it. A datagram
 * still unanswered when its socket has sent RING more (8 windows, at least
 * 256) is counted as lost too, its slot in the ring of pending datagrams
 * being needed: so scattered drops shrink a window only for a while, not
 * until the next 50 ms silence. (Replies may come back in any order.)
 *
 * After a 1 s warm-up (not counted) it counts for SECONDS, then prints one
 * JSON line:
 *   {"server":..., "size":..., "window":..., "sockets":..., "seconds":...,
 *    "sent":..., "received":..., "lost":..., "mismatched":..., "late":...,
 *    "errors":..., "dps":..., "gen_cpu":..., "gen_cpu_s":..., "gso":...}
 * "server" is $FLOOD_SERVER (default HOST:PORT); "seconds" is the measured
 * span and dps = received / seconds; "errors" counts failed socket calls
 * (ECONNREFUSED from an ICMP port unreachable, ...), which are not fatal;
 * "gen_cpu" is the generator's own CPU time over the span (1.0 = a whole
 * core: then it, not the server, may be the limit), "gen_cpu_s" its CPU
 * seconds since it started (warm-up included); "gso" says whether it sent
 * with UDP_SEGMENT (above).
 *
 * Exit status: 0, or 1 if no reply arrived while counting (the JSON line is
 * still printed), 2 on bad arguments or setup failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP_NS 1000000000LL
#define LOSS_NS 50000000LL
#define BATCH 64          /* datagrams per sendmmsg / recvmmsg call */
#define SEQ_BITS 40
#define SEQ_MASK ((1ULL << SEQ_BITS) - 1)

struct sock {
    int fd;
    uint64_t next;      /* sequence number of the next datagram */
    uint64_t *ring;     /* ring[seq & ring_mask] == seq + 1 while seq awaits its reply */
    int in_flight;
    int64_t last;       /* last reply (or refill), ns */
};

static struct {
    uint64_t sent, received, lost, mismatched, late, errors;
} st;
static int first_error;

static int size, window, nsocks;
static int gso;     /* datagrams per UDP_SEGMENT send; 0: sendmmsg */
static uint64_t ring_mask;
static unsigned char *pattern;              /* a whole datagram; bytes 0-7 unused */
static unsigned char *sbuf, *rbuf;          /* BATCH datagrams each */
static struct mmsghdr smsg[BATCH], rmsg[BATCH];
static struct iovec siov[BATCH], riov[BATCH];
static size_t rslot;                        /* size of one receive buffer */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL
        + ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static void error_seen(int err)     /* err 0: reason unknown */
{
    st.errors++;
    if (!first_error)
        first_error = err;
}

/* Sends up to k new datagrams on s (fewer if the socket refuses). */
static void send_more(struct sock *s, int idx, int k)
{
    while (k > 0) {
        int b = k < BATCH ? k : BATCH;
        for (int i = 0; i < b; i++) {
            uint64_t head = ((uint64_t)idx << SEQ_BITS) | ((s->next + i) & SEQ_MASK);
            memcpy(sbuf + (size_t)i * size, &head, 8);
        }
        int r;
        if (gso > 1) {
            if (b > gso)
                b = gso;
            ssize_t n = send(s->fd, sbuf, (size_t)b * size, 0);
            if (n < 0 && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
                gso = 0;    /* not here after all: one datagram per message */
                continue;
            }
            r = n < 0 ? -1 : b;
        } else {
            r = sendmmsg(s->fd, smsg, b, 0);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != ENOBUFS)
                error_seen(errno);
            return;     /* the 50 ms rule retries */
        }
        for (int i = 0; i < r; i++) {
            uint64_t seq = s->next + i;
            uint64_t *slot = &s->ring[seq & ring_mask];
            if (*slot) {            /* RING datagrams later, still no reply */
                st.lost++;
                s->in_flight--;
            }
            *slot = seq + 1;
        }
        s->next += r;
        s->in_flight += r;
        st.sent += r;
        k -= r;
        if (r < b) {
            /* Stopped short: a datagram failed after others went, and
             * sendmmsg dropped its error (an ICMP error is reported once). */
            error_seen(0);
            return;
        }
    }
}

/* A fresh window on s: one datagram alone first, so that if it draws an
 * ICMP error (no server) the next call reports it instead of losing it
 * inside one batch. */
static void refill(struct sock *s, int idx)
{
    send_more(s, idx, 1);
    if (s->in_flight < window)
        send_more(s, idx, window - s->in_flight);
}

/* Counts everything s has in flight as lost. */
static void lose_window(struct sock *s)
{
    if (s->in_flight == 0)
        return;
    st.lost += s->in_flight;
    s->in_flight = 0;
    memset(s->ring, 0, (ring_mask + 1) * sizeof *s->ring);
}

static void check_reply(struct sock *s, int idx, const unsigned char *d, unsigned len, int flags, int64_t t)
{
    uint64_t head;
    if (len < 8 || (flags & MSG_TRUNC)) {
        st.mismatched++;
        return;
    }
    memcpy(&head, d, 8);
    uint64_t seq = head & SEQ_MASK;
    if ((head >> SEQ_BITS) != (uint64_t)idx || seq >= s->next) {
        st.mismatched++;    /* not a datagram this socket sent */
        return;
    }
    uint64_t *slot = &s->ring[seq & ring_mask];
    if (*slot != seq + 1) {
        st.late++;          /* already counted lost, or a duplicate */
        return;
    }
    *slot = 0;
    s->in_flight--;
    s->last = t;
    if (len != (unsigned)size || memcmp(d + 8, pattern + 8, size - 8) != 0)
        st.mismatched++;    /* answered, but wrongly */
    else
        st.received++;
}

/* Reads every reply waiting on s, topping its window up after each batch. */
static void drain(struct sock *s, int idx, int64_t t)
{
    for (;;) {
        int r = recvmmsg(s->fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (r < 0) {
            if (errno == EAGAIN)
                return;
            if (errno == EINTR)
                continue;
            error_seen(errno);  /* ECONNREFUSED etc.: reported once, then cleared */
            continue;
        }
        for (int i = 0; i < r; i++)
            check_reply(s, idx, rbuf + (size_t)i * rslot, rmsg[i].msg_len, rmsg[i].msg_hdr.msg_flags, t);
        for (int i = 0; i < r; i++)
            rmsg[i].msg_hdr.msg_flags = 0;
        if (s->in_flight < window)
            send_more(s, idx, window - s->in_flight);
        if (r < BATCH)
            return;
    }
}

static long parse(const char *what, const char *text, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < lo || v > hi) {
        fprintf(stderr, "flood: %s must be an integer in %ld..%ld, not '%s'\n", what, lo, hi, text);
        exit(2);
    }
    return v;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 7) {
        fprintf(stderr, "usage: flood HOST PORT SECONDS [SIZE=64] [WINDOW=32] [SOCKETS=4]\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2];
    char *rest;
    double seconds = strtod(argv[3], &rest);
    if (*rest || rest == argv[3] || !(seconds > 0 && seconds <= 86400)) {
        fprintf(stderr, "flood: SECONDS must be a number > 0, not '%s'\n", argv[3]);
        return 2;
    }
    size = argc > 4 ? (int)parse("SIZE", argv[4], 8, 65507) : 64;
    window = argc > 5 ? (int)parse("WINDOW", argv[5], 1, 1 << 16) : 32;
    nsocks = argc > 6 ? (int)parse("SOCKETS", argv[6], 1, 4096) : 4;

    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "flood: %s port %s: %s\n", host, port, gai_strerror(rc));
        return 2;
    }

    /* Pending datagrams per socket: room for 8 windows, at least 256. */
    uint64_t ring = 256;
    while (ring < 8ULL * window)
        ring <<= 1;
    ring_mask = ring - 1;

    pattern = malloc(size);
    sbuf = malloc((size_t)BATCH * size);
    rslot = (size_t)size + 64;      /* room to see an oversized reply */
    rbuf = malloc(BATCH * rslot);
    struct sock *socks = calloc(nsocks, sizeof *socks);
    struct epoll_event *evs = calloc(nsocks, sizeof *evs);
    if (!pattern || !sbuf || !rbuf || !socks || !evs) {
        fprintf(stderr, "flood: out of memory\n");
        return 2;
    }
    for (int i = 0; i < size; i++)
        pattern[i] = (unsigned char)('a' + i % 26);
    for (int i = 0; i < BATCH; i++) {
        memcpy(sbuf + (size_t)i * size, pattern, size);
        siov[i] = (struct iovec){sbuf + (size_t)i * size, size};
        smsg[i].msg_hdr = (struct msghdr){.msg_iov = &siov[i], .msg_iovlen = 1};
        riov[i] = (struct iovec){rbuf + (size_t)i * rslot, rslot};
        rmsg[i].msg_hdr = (struct msghdr){.msg_iov = &riov[i], .msg_iovlen = 1};
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("flood: epoll_create1");
        return 2;
    }
    /* UDP_SEGMENT: the kernel cuts one send into datagrams of SIZE bytes,
     * each delivered on its own, so the server sees the very datagrams it
     * would see otherwise, and the generator crosses the IP stack once per
     * batch. Up to 64 segments and 64 KB a send. */
    const char *g = getenv("FLOOD_GSO");
    gso = (g && strcmp(g, "0") == 0) ? 0 : 65000 / size;
    if (gso > 64)
        gso = 64;
    if (gso < 2)
        gso = 0;
    int rcvbuf = window * (size + 1024) * 2;  /* a whole window of replies, with overhead */
    for (int i = 0; i < nsocks; i++) {
        struct sock *s = &socks[i];
        s->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
            perror("flood: socket");
            return 2;
        }
        if (gso > 1 && setsockopt(s->fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) < 0)
            gso = 0;
        if (rcvbuf > 212992)
            setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            fprintf(stderr, "flood: connect %s port %s: %s\n", host, port, strerror(errno));
            return 2;
        }
        s->ring = calloc(ring, sizeof *s->ring);
        if (!s->ring) {
            fprintf(stderr, "flood: out of memory\n");
            return 2;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
            perror("flood: epoll_ctl");
            return 2;
        }
    }
    freeaddrinfo(ai);

    int64_t t = now_ns();
    int64_t warm_end = t + WARMUP_NS, end = 0, start = 0, cpu0 = 0;
    int measuring = 0;
    for (int i = 0; i < nsocks; i++) {
        socks[i].last = t;
        refill(&socks[i], i);
    }
    for (;;) {
        t = now_ns();
        if (!measuring && t >= warm_end) {
            memset(&st, 0, sizeof st);
            first_error = 0;
            measuring = 1;
            start = t;
            end = t + (int64_t)(seconds * 1e9);
            cpu0 = cpu_ns();
        }
        if (measuring && t >= end)
            break;
        int64_t due = measuring ? end : warm_end;
        for (int i = 0; i < nsocks; i++) {
            struct sock *s = &socks[i];
            if (t - s->last >= LOSS_NS) {
                lose_window(s);
                s->last = t;
                refill(s, i);
            }
            if (s->last + LOSS_NS < due)
                due = s->last + LOSS_NS;
        }
        int timeout = (int)((due - t + 999999) / 1000000);
        int n = epoll_wait(ep, evs, nsocks, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("flood: epoll_wait");
            return 2;
        }
        if (n > 0)
            t = now_ns();
        for (int i = 0; i < n; i++) {
            int idx = (int)evs[i].data.u32;
            drain(&socks[idx], idx, t);
        }
    }
    double span = (t - start) / 1e9;
    double cpu = (cpu_ns() - cpu0) / 1e9;

    printf("{\"server\":");
    if (getenv("FLOOD_SERVER")) {
        json_string(getenv("FLOOD_SERVER"));
    } else {
        char label[300];
        snprintf(label, sizeof label, "%s:%s", host, port);
        json_string(label);
    }
    printf(",\"size\":%d,\"window\":%d,\"sockets\":%d,\"seconds\":%.3f,"
           "\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"mismatched\":%llu,"
           "\"late\":%llu,\"errors\":%llu,\"dps\":%.1f,\"gen_cpu\":%.2f,\"gen_cpu_s\":%.3f,\"gso\":%s}\n",
           size, window, nsocks, span,
           (unsigned long long)st.sent, (unsigned long long)st.received,
           (unsigned long long)st.lost, (unsigned long long)st.mismatched,
           (unsigned long long)st.late, (unsigned long long)st.errors,
           st.received / span, cpu / span, cpu_ns() / 1e9, gso > 1 ? "true" : "false");
    fflush(stdout);
    if (st.received == 0) {
        fprintf(stderr, "flood: no reply from %s port %s in %.1f s (after a 1 s warm-up): "
                "%llu sent, %llu errors%s%s, %llu mismatched\n",
                host, port, span, (unsigned long long)st.sent, (unsigned long long)st.errors,
                first_error ? ", e.g. " : "", first_error ? strerror(first_error) : "",
                (unsigned long long)st.mismatched);
        return 1;
    }
    return 0;
}
