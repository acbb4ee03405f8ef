/*
 * exit_codes.h — the process exit codes of SPEC §1 (check-lag's Nagios
 * codes are in check_lag.h, reconcile's meanings in reconcile.h).
 */
#ifndef P2Q_EXIT_CODES_H
#define P2Q_EXIT_CODES_H

enum { EXIT_OK = 0, EXIT_FATAL = 1, EXIT_CONFIG = 2 };

#endif
