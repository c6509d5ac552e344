/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hecache error codes that errno cannot express.  Functions return 0 or a
 * negative errno; the codes below live in a reserved range above every errno
 * value (LMDB style) and are returned negated like errno values.
 * hc_strerror() names both kinds.
 */
#ifndef HECACHE_ERRORS_H
#define HECACHE_ERRORS_H

#define HC_ERROR_BASE 2000
enum {
	HC_ECORRUPT = HC_ERROR_BASE + 1,	/* checksum or magic mismatch */
	HC_EVERSION = HC_ERROR_BASE + 2,	/* on-disk format newer than us */
	HC_ENOTHC = HC_ERROR_BASE + 3,		/* not a hecache backing directory */
	HC_ELOCKED = HC_ERROR_BASE + 4,		/* backing directory in use */
	HC_ERROR_LAST = HC_ELOCKED,
};

/* Text for a positive or negative errno or HC_E* code.  Never NULL. */
const char *hc_strerror(int err);

#endif
