/*
 * slot_cmd.h — `pg2qdrant slot create|drop|status` (SPEC §1): manage the
 * logical replication slot named by [source] slot, over a plain SQL
 * connection from [source] dsn (pg_create_logical_replication_slot,
 * pg_drop_replication_slot, pg_replication_slots).
 *
 * Decisions (docs/check-lag.md, "Slot commands"):
 *   create  a missing slot is created with plugin pgoutput (exit 0); a
 *           pgoutput slot of that name in the DSN's database already there
 *           is fine (exit 0, "already exists"); a physical slot, another
 *           plugin or another database under that name is exit 1.
 *   drop    refuses an active slot naming the PID (exit 1), refuses a slot
 *           that is not a logical pgoutput slot (exit 1), and a missing
 *           slot is exit 1, as pg_recvlogical --drop-slot does.
 *   status  human-readable lines on stdout; exit 1 when the slot is missing.
 * Exit 2 for a usage or configuration error.
 */
#ifndef P2Q_SLOT_CMD_H
#define P2Q_SLOT_CMD_H

/* The command line of `slot` as given (NULL = not given).  Borrowed. */
typedef struct slotcmd_args {
    const char *action; /* "create", "drop" or "status" */
    const char *config_path;
    const char *dsn;    /* optional override of [source] dsn */
    const char *slot;   /* optional override of [source] slot */
} slotcmd_args;

/* Runs the action; messages on stdout (results) and stderr (errors, as
 * log events).  Returns the exit code: 0 ok, 1 runtime error, 2 usage or
 * configuration error. */
int slotcmd_main(const slotcmd_args *a);

#endif
