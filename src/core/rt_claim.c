#include "rt_claim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include <apr_lib.h>

int rt_claim_type_parse(const char *name)
{
    static const char *const names[] = {"string", "list", "number", "bool"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++) {
        if (strcasecmp(s, *words) == 0) {
            return 1;
        }
    }
    return 0;
}

static json_t *number_value(const char *s, int *bad)
{
    char *end;
    apr_int64_t i;
    double d;

    errno = 0;
    i = apr_strtoi64(s, &end, 10);
    if (end != s && *end == '\0' && errno == 0) {
        return json_integer((json_int_t)i);
    }
    errno = 0;
    d = strtod(s, &end);
    if (end != s && *end == '\0' && errno == 0 && isfinite(d) &&
        !apr_isspace(*s)) {
        return json_real(d);
    }
    *bad = 1;
    return NULL;
}

/* The next separator of a list from s: a comma, or "; " (a semicolon and
 * a space), which is how mod_authnz_ldap joins the values of a
 * multi-valued attribute in its AUTHENTICATE_* variables. A semicolon
 * followed by anything else is part of an item, and commas separate as
 * they always did. NULL when there is none. */
static const char *list_separator(const char *s)
{
    for (; *s; s++) {
        if (*s == ',' || (s[0] == ';' && s[1] == ' ')) {
            return s;
        }
    }
    return NULL;
}

json_t *rt_claim_value(const char *text, rt_claim_type type, int *bad)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};

    *bad = 0;
    if (text == NULL || *text == '\0') {
        return NULL;
    }
    switch (type) {
    case RT_CLAIM_STRING:
        return json_string(text); /* NULL for invalid UTF-8: omitted */
    case RT_CLAIM_NUMBER:
        return apr_isspace(*text) ? (*bad = 1, NULL) : number_value(text, bad);
    case RT_CLAIM_BOOL:
        if (is_one_of(text, yes)) {
            return json_true();
        }
        if (is_one_of(text, no)) {
            return json_false();
        }
        *bad = 1;
        return NULL;
    case RT_CLAIM_LIST: {
        json_t *arr = json_array();
        const char *s = text;

        while (*s) {
            const char *e = list_separator(s);
            const char *end = e ? e : s + strlen(s);
            const char *a = s, *b = end;

            while (a < b && apr_isspace(*a)) {
                a++;
            }
            while (b > a && apr_isspace(b[-1])) {
                b--;
            }
            if (b > a) {
                json_array_append_new(arr, json_stringn(a, (size_t)(b - a)));
            }
            s = e ? e + (*e == ',' ? 1 : 2) : end;
        }
        if (json_array_size(arr) == 0) {
            json_decref(arr);
            return NULL;
        }
        return arr;
    }
    }
    *bad = 1;
    return NULL;
}
