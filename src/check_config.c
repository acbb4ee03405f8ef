/*
 * check_config.c — `pg2qdrant check-config`: runs preflight_check and
 * prints what it found.
 */
#include "check_config.h"

#include <stdio.h>

#include "preflight.h"

p2q_status check_config_command(const p2q_config *cfg)
{
    strlist problems = {0};
    strlist notes = {0};
    int n = preflight_check(cfg, &problems, &notes);

    for (int i = 0; i < notes.n; i++)
        printf("note: %s\n", notes.items[i]);

    for (int i = 0; i < problems.n; i++)
        fprintf(stderr, "problem: %s\n", problems.items[i]);
    if (n == 0)
        printf("configuration OK: %s\n", cfg->path);
    else
        fprintf(stderr, "%d problem%s found in %s\n", n, n == 1 ? "" : "s", cfg->path);
    strlist_free(&problems);
    strlist_free(&notes);
    return n == 0 ? P2Q_OK : P2Q_ERR_CONFIG;
}
