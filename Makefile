# mod_runai_token — see README.md. Run ./configure first (make does it for you).

-include config.mk

MODULE   = mod_runai_token
SRCS     = mod_runai_token.c $(wildcard src/*.c)
HDRS     = $(wildcard src/*.h)
# The core that needs no httpd: unit tests and (later) fuzzers link it alone.
CORE     = src/rt_util.c src/rt_error.c src/rt_request.c src/rt_keys.c src/rt_jwt.c \
           src/rt_record.c src/rt_form.c src/rt_verify.c src/rt_oidc.c \
           src/rt_credcache.c
WARN     = -Wall -Wextra -Werror
SO       = .libs/$(MODULE).so
UNIT_BIN = t/unit/bin/core_test
TOOLS    = t/bin/jwt_verify
CC      ?= cc

.PHONY: all install test unit test-tools run bench clean distclean format

all: $(SO)

config.mk: configure
	./configure $(CONFIGURE_FLAGS)

$(SO): config.mk $(SRCS) $(HDRS)
	$(APXS) -c -o $(MODULE).la $(addprefix -Wc$(comma),$(WARN)) \
	    $(filter -I% -D%,$(DEP_CFLAGS)) -Isrc $(SRCS) $(DEP_LIBS)

comma := ,

install: $(SO)
	$(APXS) -i -n runai_token $(MODULE).la
ifeq ($(ENABLE),1)
	install -m 644 conf/runai_token.load conf/runai_token.conf $(SYSCONFDIR)/mods-available/
	a2enmod runai_token
endif

$(UNIT_BIN): t/unit/core_test.c $(CORE) $(HDRS) config.mk
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -g -O1 $(DEP_CFLAGS) -Isrc -o $@ t/unit/core_test.c $(CORE) \
	    $(DEP_LIBS) $(APR_LIBS)

unit: $(UNIT_BIN)

t/bin/jwt_verify: t/tools/jwt_verify.c config.mk
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -g -O1 $(DEP_CFLAGS) -o $@ $< $(DEP_LIBS)

test-tools: $(TOOLS)

# The whole suite: unit tests (t/unit/*.t) run inside the same Apache::Test
# harness as the end-to-end tests, so prove's summary covers everything.
test: all unit test-tools
	APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -clean >/dev/null 2>&1 || true
	APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -apxs $(APXS) $(TEST_FLAGS)

run: all
	MODULE=$(CURDIR)/$(SO) APXS=$(APXS) ./scripts/run-demo.sh

# wrk on loopback; figures are ratios to a ceiling measured in the same run.
bench: all
	/usr/bin/python3 bench/bench.py

format:
	clang-format -i mod_runai_token.c src/*.c src/*.h t/unit/*.c

clean:
	rm -rf .libs src/.libs *.la *.lo *.slo *.o src/*.la src/*.lo src/*.slo src/*.o \
	    t/unit/bin t/bin
	-[ -f t/TEST.PL ] && APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -clean >/dev/null 2>&1 || true

distclean: clean
	rm -f config.mk
