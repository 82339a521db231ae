/* benches/udp/echo.c: the hand-written C baseline for UDP echo.
 *
 *   echo-c PORT        (0 = a free port)
 *
 * One thread, one blocking UDP socket on 127.0.0.1: receive up to 64
 * datagrams with one recvmmsg (MSG_WAITFORONE: whatever is waiting, at least
 * one), send each back to its source with one sendmmsg, repeat. Prints
 * "listening on udp://127.0.0.1:PORT" on stdout first. Runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
#define MAXDGRAM 65536

static char bufs[BATCH][MAXDGRAM];

int main(int argc, char **argv)
{
    char *end = "";
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo-c PORT   (0 = a free port)\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("echo-c: socket");
        return 1;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        perror("echo-c: bind");
        return 1;
    }
    printf("listening on udp://127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_in peers[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){bufs[i], MAXDGRAM};
        msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                                          .msg_iov = &iov[i], .msg_iovlen = 1};
    }
    for (;;) {
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            perror("echo-c: recvmmsg");
            return 1;
        }
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;   /* echo exactly what came */
        for (int done = 0; done < n;) {
            int r = sendmmsg(fd, msgs + done, n - done, 0);
            if (r < 0) {
                if (errno != EINTR)
                    done++;     /* this one cannot go: drop it, as UDP may */
                continue;
            }
            done += r;
        }
        for (int i = 0; i < n; i++) {
            iov[i].iov_len = MAXDGRAM;
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
            msgs[i].msg_hdr.msg_flags = 0;
        }
    }
}
