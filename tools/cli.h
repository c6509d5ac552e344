// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Command-line helpers of the small tools (hc-mrc, hedp): one-line error
 * messages prefixed with the program's name, the exit statuses the tools
 * document (1 failure, 2 usage error), and strict number parsing for
 * option arguments.  Not for the daemon: these exit the process.
 */
#ifndef HC_TOOLS_CLI_H
#define HC_TOOLS_CLI_H

#include <stdint.h>

/*
 * Sets the name that prefixes every message ("NAME: ...").  Call first in
 * main(); pass the tool's fixed name rather than argv[0] so that messages do
 * not depend on how it was invoked.  name must outlive the program.
 */
void hc_cli_init(const char *name);

/* The name set by hc_cli_init ("hecache" before). */
const char *hc_cli_name(void);

/* "NAME: <message>" on stderr, then exit(1). */
void hc_cli_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* "NAME: <message> (try 'NAME --help')" on stderr, then exit(2). */
void hc_cli_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * The decimal integer s, the argument of option opt (named in the message);
 * anything else (sign, junk, overflow, empty) is a usage error.
 */
uint64_t hc_cli_parse_u64(const char *opt, const char *s);

/* The number s (strtod syntax, not NaN), the argument of opt; else a usage error. */
double hc_cli_parse_double(const char *opt, const char *s);

#endif
