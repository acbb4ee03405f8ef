/*
 * qdrant_fixture.h — the project's Qdrant test server (QDRANT_TEST_SERVER)
 * for cmocka tests: started per group on a free port, controlled through
 * its /__test API.
 */
#ifndef P2Q_QDRANT_FIXTURE_H
#define P2Q_QDRANT_FIXTURE_H

#include <sys/types.h>

#include "qdrant_client.h"

typedef struct server {
    pid_t pid;
    char dir[64];
    char port_file[96];
    char url[64];
} server;

/* Starts the server (with api_key unless NULL) into *state (a server *). */
int server_start(void **state, const char *api_key);
int server_stop(void **state);
/* Group setups: no key / key API_KEY. */
int open_group_setup(void **state);
int auth_group_setup(void **state);
/* POSTs to the server's control API (needs no key) and expects 200. */
void control(const server *s, const char *path, const char *body);
/* Test setup: drops every collection and fault. */
int reset_server(void **state);
/* PUT /collections/<name> with body; asserts success. */
void create_collection(qd_client *c, const char *name, const char *body);
void sleep_ms(long ms);

#define API_KEY "s3cret-key-123"

#endif
