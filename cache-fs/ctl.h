/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef HC_CTL_H
#define HC_CTL_H
#endif
