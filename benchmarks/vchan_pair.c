/* The C anchor for benchmarks/_vchan_bench.py: a libxenvchan server and client in one
 * dom0 process (two threads, domid 0 to itself), the server writing SIZE bytes in 1 MiB
 * blocking libxenvchan_write calls, the client reading them in 256 KiB blocking
 * libxenvchan_read calls. Usage: vchan_pair XS_PATH SIZE RING
 * Prints the seconds from server init to the last byte read, and the sum of the bytes
 * at 4 KiB offsets of the stream. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libxenvchan.h>

static const char *path;
static size_t size;
static unsigned long long sum;
static int client_rc;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *client(void *arg)
{
    (void)arg;
    struct libxenvchan *c = libxenvchan_client_init(NULL, 0, path);
    if (!c) { perror("libxenvchan_client_init"); client_rc = 1; return NULL; }
    c->blocking = 1;
    unsigned char *buf = malloc(256 * 1024);
    size_t got = 0;
    while (got < size) {
        int n = libxenvchan_read(c, buf, 256 * 1024);
        if (n <= 0) { fprintf(stderr, "read failed at %zu\n", got); client_rc = 1; break; }
        for (size_t i = (4096 - got % 4096) % 4096; i < (size_t)n; i += 4096)
            sum += buf[i];
        got += n;
    }
    free(buf);
    libxenvchan_close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s XS_PATH SIZE RING\n", argv[0]);
        return 2;
    }
    path = argv[1];
    size = strtoull(argv[2], NULL, 0);
    size_t ring = strtoull(argv[3], NULL, 0), chunk = 1 << 20;
    unsigned char *data = malloc(chunk);
    for (size_t i = 0; i < chunk; i++)
        data[i] = (unsigned char)(i * 7 + 3);

    double t0 = now();
    struct libxenvchan *s = libxenvchan_server_init(NULL, 0, path, ring, ring);
    if (!s) { perror("libxenvchan_server_init"); return 1; }
    s->blocking = 1;
    pthread_t t;
    pthread_create(&t, NULL, client, NULL);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (libxenvchan_write(s, data, n) != (int)n) { fprintf(stderr, "write failed\n"); return 1; }
    }
    pthread_join(t, NULL);
    double t1 = now();
    libxenvchan_close(s);
    if (client_rc)
        return 1;
    printf("%.6f %llu\n", t1 - t0, sum);
    return 0;
}
