/*
 * main.c — the pg2qdrant command line (SPEC §1).
 *
 * Parses the command and its options (the logging options of SPEC §8 are
 * accepted anywhere), loads the configuration, and hands over to the
 * command.  Exit codes: 0 ok, 1 fatal runtime error, 2 usage or config error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_config.h"
#include "config.h"
#include "log.h"
#include "sync.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const char usage_text[] =
    "pg2qdrant keeps Qdrant collections in step with PostgreSQL tables (logical replication, pgoutput).\n"
    "\n"
    "Usage: pg2qdrant COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  run            stream changes until SIGTERM/SIGINT\n"
    "  check-config   validate the config and check both sides; list every problem\n"
    "  snapshot       full backfill of the configured tables (not implemented yet)\n"
    "  reconcile      compare tables and collections (not implemented yet)\n"
    "  check-lag      slot health for monitoring (not implemented yet)\n"
    "  slot           create|drop|status the replication slot (not implemented yet)\n"
    "\n"
    "Options (every command):\n"
    "  -c, --config FILE        config file (default: $PG2QDRANT_CONFIG, else " CONFIG_DEFAULT_PATH ")\n"
    "  --log-level LEVEL        debug | info | warn | error (default info)\n"
    "  --log-format FORMAT      logfmt | json (default logfmt)\n"
    "  -h, --help               this help;  pg2qdrant COMMAND --help for a command\n"
    "  -V, --version            print the version\n";

static const struct {
    const char *name;
    const char *help;
} commands[] = {
    {"run", "Usage: pg2qdrant run [-c FILE] [--log-level L] [--log-format F]\n"
            "Streams changes from the replication slot into Qdrant until SIGTERM/SIGINT.\n"
            "Exit: 0 clean stop, 1 fatal runtime error, 2 usage/config error.\n"},
    {"check-config", "Usage: pg2qdrant check-config [-c FILE]\n"
                     "Validates the config, connects to PostgreSQL and Qdrant, and lists every problem found\n"
                     "(publication, keys, replica identity, collections, vector sizes).\n"
                     "Exit: 0 all good, 2 problems found.\n"},
    {"snapshot", "Usage: pg2qdrant snapshot [-c FILE] [--table T]...\nNot implemented in this version.\n"},
    {"reconcile", "Usage: pg2qdrant reconcile [-c FILE] [--fix] [--table T] [--output text|json]\n"
                  "Not implemented in this version.\n"},
    {"check-lag", "Usage: pg2qdrant check-lag [-c FILE] [--slot S] [--warn SIZE] [--critical SIZE]\n"
                  "Not implemented in this version.\n"},
    {"slot", "Usage: pg2qdrant slot create|drop|status [-c FILE]\nNot implemented in this version.\n"},
};

typedef struct cli {
    const char *command;
    const char *config_path;
    bool help;
    log_level level;
    bool json_logs;
} cli;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "pg2qdrant: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'pg2qdrant --help'.\n");
    return EXIT_CONFIG;
}

/* Value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool is_opt(const char *arg, const char *name)
{
    size_t n = strlen(name);

    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int parse_cli(int argc, char **argv, cli *c)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            c->help = true;
        } else if (strcmp(a, "-c") == 0 || is_opt(a, "--config")) {
            if (!(v = opt_value(argc, argv, &i, strcmp(a, "-c") == 0 ? "-c" : "--config")) || !*v)
                return usage_error("option %s needs a file name", a);
            c->config_path = v;
        } else if (is_opt(a, "--log-level")) {
            if (!(v = opt_value(argc, argv, &i, "--log-level")) || log_parse_level(v, &c->level) != 0)
                return usage_error("--log-level takes debug, info, warn or error (got '%s')", v ? v : "");
        } else if (is_opt(a, "--log-format")) {
            if (!(v = opt_value(argc, argv, &i, "--log-format")) ||
                (strcmp(v, "logfmt") != 0 && strcmp(v, "json") != 0))
                return usage_error("--log-format takes logfmt or json (got '%s')", v ? v : "");
            c->json_logs = strcmp(v, "json") == 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (!c->command) {
            c->command = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    return 0;
}

static int load_config(const cli *c, p2q_config *cfg)
{
    strlist errs = {0};
    int rc = 0;

    if (config_load(c->config_path, cfg, &errs) != 0) {
        for (int i = 0; i < errs.n; i++)
            log_error("configuration error", "error", errs.items[i], NULL);
        rc = -1;
    }
    strlist_free(&errs);
    return rc;
}

static int cmd_check_config(const p2q_config *cfg)
{
    strlist problems = {0};
    int n = check_config_run(cfg, &problems);

    for (int i = 0; i < problems.n; i++)
        fprintf(stderr, "problem: %s\n", problems.items[i]);
    if (n == 0)
        printf("configuration OK: %s\n", cfg->path);
    else
        fprintf(stderr, "%d problem%s found in %s\n", n, n == 1 ? "" : "s", cfg->path);
    strlist_free(&problems);
    return n == 0 ? EXIT_OK : EXIT_CONFIG;
}

static int cmd_run(const p2q_config *cfg)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return sync_run(cfg, &stop_requested);
}

int main(int argc, char **argv)
{
    cli c = {.level = LOG_INFO};
    p2q_config cfg;
    int rc, known = -1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("pg2qdrant %s\n", P2Q_VERSION);
            return EXIT_OK;
        }
    }
    if ((rc = parse_cli(argc, argv, &c)) != 0)
        return rc;
    log_setup(c.level, c.json_logs);
    if (!c.command) {
        fputs(usage_text, c.help ? stdout : stderr);
        return c.help ? EXIT_OK : EXIT_CONFIG;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(c.command, commands[i].name) == 0)
            known = (int)i;
    if (known < 0)
        return usage_error("unknown command '%s'", c.command);
    if (c.help) {
        fputs(commands[known].help, stdout);
        return EXIT_OK;
    }
    if (strcmp(c.command, "run") != 0 && strcmp(c.command, "check-config") != 0) {
        fprintf(stderr, "pg2qdrant: '%s' is not implemented in this version\n", c.command);
        return strcmp(c.command, "check-lag") == 0 ? 3 : EXIT_CONFIG;
    }

    if (load_config(&c, &cfg) != 0) {
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    rc = strcmp(c.command, "run") == 0 ? cmd_run(&cfg) : cmd_check_config(&cfg);
    config_free(&cfg);
    return rc;
}
