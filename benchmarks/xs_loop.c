/* The C anchor for benchmarks/xenstore_ops.py: N libxenstore operations in a loop,
 * timed inside the process. Usage: xs_loop OP PATH SIZE N  (OP: read write ls txn rmw read100 tx30)
 * Prints the seconds per operation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s read|write|ls|txn|rmw|read100|tx30 PATH SIZE N\n", argv[0]);
        return 2;
    }
    const char *op = argv[1], *path = argv[2];
    unsigned size = atoi(argv[3]), n = atoi(argv[4]), len, i;
    struct xs_handle *h = xs_open(0);
    if (!h) { perror("xs_open"); return 1; }
    char *buf = malloc(size + 1);
    memset(buf, 'x', size);
    double t0 = 0;
    for (i = 0; i < n + 10; i++) {              /* 10 warm-up iterations */
        if (i == 10)
            t0 = now();
        if (!strcmp(op, "read")) {
            void *v = xs_read(h, XBT_NULL, path, &len);
            if (!v) { perror("xs_read"); return 1; }
            free(v);
        } else if (!strcmp(op, "write")) {
            if (!xs_write(h, XBT_NULL, path, buf, size)) { perror("xs_write"); return 1; }
        } else if (!strcmp(op, "ls")) {
            char **d = xs_directory(h, XBT_NULL, path, &len);
            if (!d) { perror("xs_directory"); return 1; }
            free(d);
        } else if (!strcmp(op, "txn") || !strcmp(op, "rmw")) {
            for (;;) {
                xs_transaction_t t = xs_transaction_start(h);
                if (!t) { perror("xs_transaction_start"); return 1; }
                if (!strcmp(op, "rmw")) {
                    void *v = xs_read(h, t, path, &len);
                    if (!v || !xs_write(h, t, path, v, len)) { perror("rmw"); return 1; }
                    free(v);
                }
                if (xs_transaction_end(h, t, false))
                    break;
            }
        } else if (!strcmp(op, "read100")) {     /* the batch anchor: 100 reads */
            for (unsigned k = 0; k < 100; k++) {
                void *v = xs_read(h, XBT_NULL, path, &len);
                if (!v) { perror("xs_read"); return 1; }
                free(v);
            }
        } else if (!strcmp(op, "tx30")) {        /* 30 writes in one transaction */
            char node[256];
            for (;;) {
                xs_transaction_t t = xs_transaction_start(h);
                if (!t) { perror("xs_transaction_start"); return 1; }
                for (unsigned k = 0; k < 30; k++) {
                    snprintf(node, sizeof(node), "%s/n%u", path, k);
                    if (!xs_write(h, t, node, buf, size)) { perror("xs_write"); return 1; }
                }
                if (xs_transaction_end(h, t, false))
                    break;
            }
        } else {
            fprintf(stderr, "unknown op %s\n", op);
            return 2;
        }
    }
    printf("%.9f\n", (now() - t0) / n);
    xs_close(h);
    return 0;
}
