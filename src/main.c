/*
 * main.c — the pg2qdrant command line (SPEC §1).
 *
 * Parses the command and its options (the logging options of SPEC §8 are
 * accepted anywhere), loads the configuration, and hands over to the
 * command.  Exit codes: 0 ok, 1 fatal runtime error, 2 usage or config error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "check_config.h"
#include "check_lag.h"
#include "config.h"
#include "exit_codes.h"
#include "http_server.h"
#include "log.h"
#include "reconcile.h"
#include "metrics.h"
#include "slot_cmd.h"
#include "snapshot.h"
#include "backfill_cmd.h"
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
    "  snapshot       full backfill of the configured tables from a consistent snapshot\n"
    "  reconcile      compare tables and collections: missing, orphaned, stale points; --fix repairs\n"
    "  check-lag      slot health for monitoring (Nagios, JSON, Prometheus); exit 0/1/2/3\n"
    "  slot           create|drop|status the replication slot\n"
    "  backfill       ask the running sync to re-read tables online, while it streams\n"
    "  rebuild        build a table's collection anew behind its alias and switch readers over\n"
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
    {"snapshot", "Usage: pg2qdrant snapshot [-c FILE] [--table T]...\n"
                 "Reads every row of the configured tables (or of each --table schema.name) from one REPEATABLE\n"
                 "READ snapshot and upserts it into its collection; needs no slot.  See docs/snapshot.md.\n"
                 "Exit: 0 done, 1 runtime error, 2 usage/config error (e.g. a --table not in the config).\n"},
    {"reconcile", "Usage: pg2qdrant reconcile [-c FILE] [--fix [--timeout DURATION]] [--table T]... [--output text|json]\n"
                  "Compares each table with its collection: missing points (row without point), orphaned points\n"
                  "(point without row), stale points (payload or vector differs from the mapping of the row).\n"
                  "  --fix          upsert missing and stale rows, delete orphaned points; while a run holds the\n"
                  "                 slot, hand their keys to it as backfill requests instead (and with [http]\n"
                  "                 listen wait until it reports them done)\n"
                  "  --timeout D    --fix with a running sync: stop waiting after D (30s, 15min, 2h)\n"
                  "  --table T      only this table (schema.name); repeatable\n"
                  "  --output F     text (default) or json, on stdout\n"
                  "See docs/reconcile.md.  Exit: 0 in sync (or all fixed), 1 drift found and not fixed, 2 error.\n"},
    {"check-lag", "Usage: pg2qdrant check-lag [-c FILE | --dsn CONNINFO] [--slot S] [--warn SIZE] [--critical SIZE]\n"
                  "                           [--inactive-warn DURATION] [--inactive-critical DURATION]\n"
                  "                           [--output nagios|json|prometheus]\n"
                  "Reports the replication slot's health: the backlog (WAL after confirmed_flush_lsn) and the WAL\n"
                  "it retains (after restart_lsn), wal_status, plugin, and whether a process holds it.\n"
                  "  --dsn CONNINFO           libpq conninfo or URI; without -c and --dsn, [source] dsn of the\n"
                  "                           config if there is one, else libpq's PG* variables\n"
                  "  --slot NAME              default: [source] slot, else pg2qdrant\n"
                  "  --warn SIZE              backlog above which the status is WARNING (default 1GB)\n"
                  "  --critical SIZE          backlog above which the status is CRITICAL (default 4GB)\n"
                  "  --inactive-warn D        no process has held the slot for longer than D: WARNING (off)\n"
                  "  --inactive-critical D    ... CRITICAL (off); D with its unit: 30s, 15min, 2h\n"
                  "  --output FORMAT          nagios (default, one line + perfdata) | json | prometheus\n"
                  "CRITICAL also for a missing slot, wal_status unreserved or lost, an invalidated slot, or a\n"
                  "plugin other than pgoutput.  Sizes: B kB MB GB TB.  See docs/check-lag.md.\n"
                  "Exit: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot connect or query, bad command line).\n"},
    {"slot", "Usage: pg2qdrant slot create|drop|status [-c FILE] [--slot NAME] [--dsn CONNINFO]\n"
             "  create   create [source] slot (logical, pgoutput) in the DSN's database; one that exists\n"
             "           already is fine, a physical or other-plugin slot of that name is an error\n"
             "  drop     drop it; refused while a process holds it (the PID is named) or when it is not a\n"
             "           pgoutput slot; a missing slot is an error (as pg_recvlogical --drop-slot)\n"
             "  status   plugin, active/pid, LSNs, wal_status, safe_wal_size, backlog and retained WAL\n"
             "Exit: 0 ok, 1 runtime error (missing slot, refused, PostgreSQL error), 2 usage/config error.\n"},
    {"backfill", "Usage: pg2qdrant backfill [-c FILE] [--table T]... [--wait] [--timeout DURATION]\n"
                 "Asks the run consuming [source] slot to re-read the configured tables (or each --table) in\n"
                 "key-ordered chunks while it keeps streaming: writes the request into the WAL\n"
                 "(pg_logical_emit_message) and prints its id.  A run that is down carries it out when it starts.\n"
                 "  --wait          follow the run's /status ([http] listen) until the backfill is done\n"
                 "  --timeout D     with --wait: give up after D (30s, 15min, 2h); the backfill goes on\n"
                 "See docs/backfill.md.  Exit: 0 requested (with --wait: done), 1 failed or timed out,\n"
                 "2 usage/config error (e.g. a --table not in the config, --wait without [http] listen).\n"},
    {"rebuild", "Usage: pg2qdrant rebuild [-c FILE] --table T... [--wait] [--timeout DURATION]\n"
                "Asks the run consuming [source] slot to build each table's collection anew behind its Qdrant\n"
                "alias ([table] collection): a new generation <alias>_g<N> with [table] create_params (or the\n"
                "current one's parameters), filled by an online backfill while every change goes to both, then\n"
                "the alias is switched in one call and the old generation deleted (keep_old_collections).\n"
                "  --wait          follow the run's /status ([http] listen) until the rebuild is finished\n"
                "  --timeout D     with --wait: give up after D; the rebuild goes on\n"
                "See docs/rebuild.md.  Exit: 0 requested (with --wait: done), 1 failed or timed out,\n"
                "2 usage/config error (a table whose collection is not an alias: the steps are printed).\n"},
};

#define CLI_MAX_TABLES 256

typedef struct cli {
    const char *command;
    const char *config_path;
    bool help;
    log_level level;
    bool json_logs;
    const char *action;         /* slot create|drop|status */
    const char *lag_opt;        /* the first check-lag-only option seen, for a usage error elsewhere */
    const char *source_opt;     /* the first --dsn/--slot seen */
    lag_args lag;               /* check-lag's options (config_path filled in later) */
    char *tables[CLI_MAX_TABLES]; /* --table, for snapshot and reconcile (argv strings) */
    int ntables;
    bool fix;                   /* reconcile --fix */
    bool wait;                  /* backfill --wait */
    const char *timeout;        /* backfill --timeout */
} cli;

/* A bad command line exits 2, or 3 (UNKNOWN) for check-lag, as Nagios plugins do. */
static int usage_exit = EXIT_CONFIG;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "pg2qdrant: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'pg2qdrant --help'.\n");
    return usage_exit;
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

/* check-lag's and slot's options taking a value: where it goes, and its
 * name (*lag_only: only check-lag takes it, else check-lag and slot). */
static const char **lag_opt_target(cli *c, const char *a, const char **name, bool *lag_only)
{
    static const char *const lag_names[] = {"--warn", "--critical", "--inactive-warn", "--inactive-critical",
                                            "--output"};
    const char **lag_dst[] = {&c->lag.warn, &c->lag.critical, &c->lag.inactive_warn, &c->lag.inactive_critical,
                              &c->lag.output};

    for (size_t k = 0; k < sizeof lag_names / sizeof lag_names[0]; k++) {
        if (is_opt(a, lag_names[k])) {
            *name = lag_names[k];
            *lag_only = true;
            return lag_dst[k];
        }
    }
    *lag_only = false;
    *name = is_opt(a, "--dsn") ? "--dsn" : is_opt(a, "--slot") ? "--slot" : NULL;
    return !*name ? NULL : strcmp(*name, "--dsn") == 0 ? &c->lag.dsn : &c->lag.slot;
}

/* true when the command word is check-lag (found before parsing, so that
 * every usage error of check-lag exits 3). */
static bool command_is_check_lag(int argc, char **argv)
{
    static const char *const with_value[] = {"-c", "--config", "--log-level", "--log-format", "--dsn", "--slot",
                                             "--warn", "--critical", "--inactive-warn", "--inactive-critical",
                                             "--output", "--table"};

    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-')
            return strcmp(argv[i], "check-lag") == 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (strcmp(argv[i], with_value[k]) == 0)
                i++;
    }
    return false;
}

static int parse_cli(int argc, char **argv, cli *c)
{
    const char **dst, *name;
    bool lag_only;

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
        } else if (is_opt(a, "--table")) {
            if (!(v = opt_value(argc, argv, &i, "--table")) || !*v)
                return usage_error("option %s needs a value", "--table");
            if (c->ntables == CLI_MAX_TABLES)
                return usage_error("too many --table options (at most %s)", "256");
            c->tables[c->ntables++] = (char *)v;
        } else if (strcmp(a, "--fix") == 0) {
            c->fix = true;
        } else if (strcmp(a, "--wait") == 0) {
            c->wait = true;
        } else if (is_opt(a, "--timeout")) {
            if (!(v = opt_value(argc, argv, &i, "--timeout")) || !*v)
                return usage_error("option %s needs a value", "--timeout");
            c->timeout = v;
        } else if ((dst = lag_opt_target(c, a, &name, &lag_only)) != NULL) {
            if (!(v = opt_value(argc, argv, &i, name)) || !*v)
                return usage_error("option %s needs a value", name);
            *dst = v;
            if (lag_only && !c->lag_opt && strcmp(name, "--output") != 0) /* --output: reconcile's too */
                c->lag_opt = name;
            if (!lag_only && !c->source_opt)
                c->source_opt = name;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (!c->command) {
            c->command = a;
        } else if (!c->action && strcmp(c->command, "slot") == 0) {
            c->action = a;
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

/*
 * The one translation of an engine status into the exit code of SPEC §1,
 * per command.  run: a stop (SIGTERM/SIGINT) is the normal end, 0.
 * snapshot: anything short of done is 1, a config error 2.  reconcile
 * (docs/reconcile.md): 0 in sync or fixed, 1 drift left, 2 any error.
 * check-config: 0 all good, 2 problems.  (check-lag and slot print their
 * own Nagios-style or plain codes: check_lag.h, slot_cmd.h.)
 */
static int exit_code(const char *command, p2q_status st, bool drift)
{
    if (strcmp(command, "reconcile") == 0)
        return st != P2Q_OK ? EXIT_CONFIG : drift ? EXIT_FATAL : EXIT_OK;
    switch (st) {
    case P2Q_OK: return EXIT_OK;
    case P2Q_ERR_CONFIG: return EXIT_CONFIG;
    case P2Q_STOPPED: return strcmp(command, "run") == 0 ? EXIT_OK : EXIT_FATAL;
    default: return EXIT_FATAL;
    }
}

/* Livez fails when the sync loop has not turned for this long. */
#define LIVEZ_MIN_BOUND_MS 30000

static p2q_status cmd_run(const p2q_config *cfg)
{
    struct sigaction sa;
    p2q_metrics *metrics = NULL;
    http_server *http = NULL;
    char err[512];
    p2q_status rc = P2Q_ERR_CONFIG;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    metrics = metrics_new(cfg->source.slot);
    if (cfg->http.listen && cfg->http.listen[0]) {
        int64_t bound = 3 * cfg->source.status_interval_ms;
        if (bound < LIVEZ_MIN_BOUND_MS)
            bound = LIVEZ_MIN_BOUND_MS;
        if (http_start(cfg->http.listen, metrics, bound, &http, err, sizeof err) != 0) {
            log_error("cannot start the endpoint server ([http] listen)", "error", err, NULL);
            goto cleanup;
        }
        log_info("endpoint server listening", "listen", cfg->http.listen, NULL);
    }
    rc = sync_run(cfg, &stop_requested, metrics);
cleanup:
    http_stop(http);
    metrics_free(metrics);
    return rc;
}

/* snapshot, reconcile and backfill: SIGTERM/SIGINT stop them between pages.
 * *drift: reconcile found drift it did not fix. */
static p2q_status cmd_snapshot_reconcile(const cli *c, const p2q_config *cfg, int64_t timeout_ms, bool *drift)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(c->command, "snapshot") == 0)
        return snap_command(cfg, c->tables, c->ntables, &stop_requested);
    if (strcmp(c->command, "backfill") == 0) {
        srandom((unsigned)getpid() ^ (unsigned)now_ms());
        return bf_command(cfg, c->tables, c->ntables, c->wait, timeout_ms, &stop_requested);
    }
    if (strcmp(c->command, "rebuild") == 0) {
        srandom((unsigned)getpid() ^ (unsigned)now_ms());
        return rb_command(cfg, c->tables, c->ntables, c->wait, timeout_ms, &stop_requested);
    }
    {
        recon_options opt = {.tables = c->tables,
                             .ntables = c->ntables,
                             .fix = c->fix,
                             .timeout_ms = timeout_ms,
                             .output = c->lag.output && strcmp(c->lag.output, "json") == 0 ? RECON_JSON : RECON_TEXT};
        srandom((unsigned)getpid() ^ (unsigned)now_ms()); /* backfill request ids (an active slot) */
        return recon_command(cfg, &opt, &stop_requested, drift);
    }
}

/*
 * The process holds the DSN password and the Qdrant API key in memory: no
 * core dump may write them to disk (a crash, or SIGQUIT/SIGABRT), and no
 * process of the same user may read them with ptrace or /proc/PID/mem.
 * RLIMIT_CORE goes to 0 (hard limit too, so it cannot be raised back) and
 * on Linux the process is made non-dumpable, which also covers a
 * core_pattern that pipes to a handler (that ignores RLIMIT_CORE).  Called
 * first in main, before any secret is read.  Returns 0, or -1 with err.
 */
static int forbid_core_dumps(char *err, size_t errlen)
{
    struct rlimit none = {0, 0};

    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        snprintf(err, errlen, "cannot set RLIMIT_CORE to 0: %s", strerror(errno));
        return -1;
    }
#ifdef __linux__
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "cannot make the process non-dumpable: %s", strerror(errno));
        return -1;
    }
#endif
    return 0;
}

int main(int argc, char **argv)
{
    cli c = {.level = LOG_INFO};
    p2q_config cfg;
    int rc, known = -1;
    int64_t timeout_ms = 0;
    char core_err[128];

    if (forbid_core_dumps(core_err, sizeof core_err) != 0) {
        fprintf(stderr, "pg2qdrant: %s\n", core_err);
        return EXIT_FATAL;
    }

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("pg2qdrant %s\n", P2Q_VERSION);
            return EXIT_OK;
        }
    }
    if (command_is_check_lag(argc, argv))
        usage_exit = LAG_UNKNOWN;
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
    if (c.lag_opt && strcmp(c.command, "check-lag") != 0)
        return usage_error("option %s is only for check-lag", c.lag_opt);
    if (c.lag.output && strcmp(c.command, "check-lag") != 0 && strcmp(c.command, "reconcile") != 0)
        return usage_error("option %s is only for check-lag and reconcile", "--output");
    if (c.ntables > 0 && strcmp(c.command, "snapshot") != 0 && strcmp(c.command, "reconcile") != 0 &&
        strcmp(c.command, "backfill") != 0 && strcmp(c.command, "rebuild") != 0)
        return usage_error("option %s is only for snapshot, reconcile, backfill and rebuild", "--table");
    if ((c.wait || c.timeout) && strcmp(c.command, "backfill") != 0 && strcmp(c.command, "rebuild") != 0 &&
        !(c.timeout && !c.wait && strcmp(c.command, "reconcile") == 0))
        return usage_error("option %s is only for backfill and rebuild", c.wait ? "--wait" : "--timeout");
    if (c.timeout && !c.wait && strcmp(c.command, "reconcile") != 0)
        return usage_error("option %s needs --wait", "--timeout");
    if (c.timeout && strcmp(c.command, "reconcile") == 0 && !c.fix)
        return usage_error("option %s needs --fix", "--timeout");
    if (c.timeout && config_parse_duration(c.timeout, &timeout_ms) != 0)
        return usage_error("--timeout takes a duration such as 30s, 15min or 2h (got '%s')", c.timeout);
    if (c.fix && strcmp(c.command, "reconcile") != 0)
        return usage_error("option %s is only for reconcile", "--fix");
    if (strcmp(c.command, "reconcile") == 0 && c.lag.output && strcmp(c.lag.output, "text") != 0 &&
        strcmp(c.lag.output, "json") != 0)
        return usage_error("--output takes text or json (got '%s')", c.lag.output);
    if (c.source_opt && strcmp(c.command, "check-lag") != 0 && strcmp(c.command, "slot") != 0)
        return usage_error("option %s is only for check-lag and slot", c.source_opt);
    if (strcmp(c.command, "check-lag") == 0) {
        c.lag.config_path = c.config_path;
        return check_lag_main(&c.lag);
    }
    if (strcmp(c.command, "slot") == 0) {
        slotcmd_args sa = {.action = c.action, .config_path = c.config_path, .dsn = c.lag.dsn, .slot = c.lag.slot};
        return slotcmd_main(&sa);
    }
    if (strcmp(c.command, "run") != 0 && strcmp(c.command, "check-config") != 0 &&
        strcmp(c.command, "snapshot") != 0 && strcmp(c.command, "reconcile") != 0 &&
        strcmp(c.command, "backfill") != 0 && strcmp(c.command, "rebuild") != 0) {
        fprintf(stderr, "pg2qdrant: '%s' is not implemented in this version\n", c.command);
        return strcmp(c.command, "check-lag") == 0 ? 3 : EXIT_CONFIG;
    }

    if (load_config(&c, &cfg) != 0) {
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    {
        bool drift = false;
        p2q_status st;
        if (strcmp(c.command, "snapshot") == 0 || strcmp(c.command, "reconcile") == 0 ||
            strcmp(c.command, "backfill") == 0 || strcmp(c.command, "rebuild") == 0)
            st = cmd_snapshot_reconcile(&c, &cfg, timeout_ms, &drift);
        else
            st = strcmp(c.command, "run") == 0 ? cmd_run(&cfg) : check_config_command(&cfg);
        rc = exit_code(c.command, st, drift);
    }
    config_free(&cfg);
    return rc;
}
