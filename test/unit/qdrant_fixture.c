/*
 * qdrant_fixture.c — see qdrant_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "qdrant_fixture.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads the port the server wrote; 0 while the file is not there yet. */
static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

int server_start(void **state, const char *api_key)
{
    server *s = xcalloc(1, sizeof *s);
    int port = 0;
    int status;

    snprintf(s->dir, sizeof s->dir, "/tmp/p2q-qdc-XXXXXX");
    if (!mkdtemp(s->dir)) {
        free(s);
        return -1;
    }
    snprintf(s->port_file, sizeof s->port_file, "%s/port", s->dir);
    s->pid = fork();
    if (s->pid < 0)
        goto fail;
    if (s->pid == 0) {
        if (api_key)
            execl(QDRANT_TEST_SERVER, QDRANT_TEST_SERVER, "--host", "127.0.0.1", "--port", "0", "--port-file",
                  s->port_file, "--api-key", api_key, (char *)NULL);
        else
            execl(QDRANT_TEST_SERVER, QDRANT_TEST_SERVER, "--host", "127.0.0.1", "--port", "0", "--port-file",
                  s->port_file, (char *)NULL);
        perror("exec " QDRANT_TEST_SERVER);
        _exit(127);
    }
    for (int i = 0; i < 500 && port == 0; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "qdrant_test_server exited early (status %d)\n", status);
            s->pid = 0;
            goto fail;
        }
        sleep_ms(20);
        port = read_port(s->port_file);
    }
    if (port == 0) {
        fprintf(stderr, "qdrant_test_server did not write %s\n", s->port_file);
        goto fail;
    }
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", port);
    *state = s;
    return 0;
fail:
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    unlink(s->port_file);
    rmdir(s->dir);
    free(s);
    return -1;
}

int server_stop(void **state)
{
    server *s = *state;
    int status = 0;

    if (!s)
        return 0;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &status, 0);
    unlink(s->port_file);
    rmdir(s->dir);
    free(s);
    *state = NULL;
    return 0;
}

int open_group_setup(void **state)
{
    return server_start(state, NULL);
}

int auth_group_setup(void **state)
{
    return server_start(state, API_KEY);
}

/* POSTs to the server's control API (needs no key) and expects 200. */
void control(const server *s, const char *path, const char *body)
{
    qd_client *c = qd_client_new(s->url, NULL, 5000);
    qd_result r;

    assert_non_null(c);
    qd_request(c, "POST", path, body, body ? strlen(body) : 0, &r);
    assert_int_equal(r.http_status, 200);
    qd_result_clear(&r);
    qd_client_free(c);
}

int reset_server(void **state)
{
    control(*state, "/__test/reset", NULL);
    return 0;
}

/* PUT /collections/<name> with body; asserts success. */
void create_collection(qd_client *c, const char *name, const char *body)
{
    char path[256];
    qd_result r;
    char desc[600];

    snprintf(path, sizeof path, "/collections/%s", name);
    if (qd_request(c, "PUT", path, body, strlen(body), &r) != 0)
        fail_msg("create %s: %s", name, qd_result_describe(&r, desc, sizeof desc));
    assert_true(json_is_true(r.result));
    qd_result_clear(&r);
}

