/**
 * The command line's help texts, one per command. Plain strings: printing help loads
 * nothing else. Must never: parse arguments (Command.ts does) or start anything.
 */
import type { CommandName } from "./Command.ts"

const overview = `Sluice: an OpenAI-compatible inference gateway for LLM traffic.

Usage:
  sluice [serve] [flags]          start the gateway (the default command)
  sluice check-config [FILE...]   decode and validate config files, print every error
  sluice simulate [flags]         run the inference-engine simulator on its own
  sluice plan --trace F --fleet F replay a trace through a virtual-time fleet, per routing policy
  sluice keys COMMAND ...         API keys: create, list, revoke, rotate, expire, hash
  sluice tenants COMMAND ...      tenants: create, list, disable, enable
  sluice limits COMMAND ...       limits per tenant, tenant and model, key: set, show
  sluice prices COMMAND ...       prices per model (and backend): set, list
  sluice usage [--tenant T]       requests and tokens by model and day, from the audit ledger
  sluice help [COMMAND]           help for a command
  sluice --version                print the version

Run 'sluice help serve' for the gateway's flags and environment variables.`

const serve = `Usage: sluice [serve] [flags]

Starts the gateway in front of the backends of its config file (by default
config/sluice.yaml: a built-in simulated GPU fleet). SIGINT/SIGTERM drain: readiness
turns 503, new requests get 503, in-flight streams get up to timeouts.drain to finish.

Flags (each wins over its environment variable):
  --config FILE        config file                       SLUICE_CONFIG (default config/sluice.yaml)
  --upstream URL       quick start: front one OpenAI-compatible server for every model
                       its /models lists                 SLUICE_UPSTREAM (key: SLUICE_UPSTREAM_API_KEY)
  --host HOST          listen address                    HOST (default: the config's server.host)
  --port N             listen port (0-65535)             PORT (default: the config's server.port)
  --log-level LEVEL    trace|debug|info|warn|error|fatal|none
                                                         SLUICE_LOG_LEVEL or LOG_LEVEL (default info)
  --workers N|auto     node:cluster workers sharing the socket
                                                         SLUICE_WORKERS (default 1)
  -h, --help           this help
  --version            print the version

Other environment: DATABASE_URL (audit ledger in Postgres), REDIS_URL (shared budgets),
SLUICE_DATA_DIR (embedded ledger folder, default data/), OTEL_EXPORTER_OTLP_ENDPOINT
(traces over OTLP/HTTP), OTEL_SERVICE_NAME.`

const checkConfig = `Usage: sluice check-config [FILE...]

Decodes and validates each file with the gateway's own loader, exactly as serve would
at start, and prints every problem with the path that holds it, e.g.
  config/sluice.yaml: backends[1].max_concurency: Expected no excess property
Without FILE it checks what serve would load ($SLUICE_CONFIG or config/sluice.yaml).
Backends' api_key_env variables are read from the environment, as at start.

Exit status: 0 when every file is valid, 1 when one is not, 2 on a usage error.`

const simulate = `Usage: sluice simulate [flags]

Runs the inference-engine simulator on its own (vLLM/OpenAI, Anthropic, Ollama or
SGLang wire protocol), one instance from flags or a whole fleet from a file.
Run 'sluice simulate --help' for its flags.`

const plan = `Usage: sluice plan --trace FILE --fleet FILE [--policies a,b,c] [flags]

Replays a trace through a fleet of simulated engines in virtual time (no sockets, no
clock: hours of traffic in minutes) with the gateway's own router, once per policy, and
prints TTFT, ITL, output tokens/s, goodput and GPU cost per policy.

  --trace FILE        JSONL: planner lines {"at_ms":0,"model":"m","prompt_tokens":900,
                      "output_tokens":120[,"tenant","max_tokens","prefix","prefix_tokens",
                      "session"]}, or the ledger's usage records (usage.jsonl, the journal)
  --fleet FILE        a gateway config, its backends: section, or a simulator fleet
                      file (instances:); every backend needs a known engine profile
  --policies LIST     inference[+kv][/picker], round_robin, least_outstanding, random,
                      ordered (default inference,round_robin,least_outstanding); +kv: the
                      precise prefix index from the engines' KV events
  --seed N            routing and jitter seed (default 1)
  --jitter X          relative step-time jitter of every engine, 0-0.5 (default 0)
  --duration S        measure arrivals before S seconds (default: all, run to the end)
  --warmup S          ... and not before S seconds (default 0)
  --drain S           cut off S seconds after --duration (default 60)
  --kv-blocks N       KV blocks per engine (cache-churn what-ifs; default the profile's)
  --json              print the reports as JSON

Exit status: 0 done, 1 a file could not be read or decoded, 2 a usage error.`

const keys = `Usage: sluice keys COMMAND ...

  keys create --tenant ID --name NAME [--models a,b] [--expires 30d|ISO-TIME]
  keys list [--tenant ID]
  keys revoke KEY_ID
  keys rotate KEY_ID [--grace 7d]
  keys expire KEY_ID (--in 30d | --at ISO-TIME | --never)
  keys hash [KEY | -]        the Argon2id hash of a key, for auth.keys (no KEY: a new key)

Works on the gateway's own store: DATABASE_URL, else SLUICE_DATA_DIR (default data/).
--json prints JSON; --config FILE reads the gateway's config. The raw key is printed once,
by create, rotate and hash. With REDIS_URL set, running replicas learn of a revocation at once.`

const tenants = `Usage: sluice tenants COMMAND ...

  tenants create ID [--name NAME]
  tenants list
  tenants disable ID
  tenants enable ID`

const limits = `Usage: sluice limits COMMAND ...

  limits set (--tenant ID [--model M] | --key KEY_ID) --LIMIT VALUE ...
  limits show (--tenant ID [--model M] | --key KEY_ID)

LIMIT: requests-per-minute, tokens-per-{minute,day,month}, input-tokens-per-{minute,day,month},
output-tokens-per-{minute,day,month}, spend-per-{day,month} (USD), concurrent-requests (tenant).
A VALUE of none lifts the limit (also one from the config file). Running gateways apply
the change within 5 s; the admin API (PUT /admin/v1/tenants/ID/limits) applies it at once.`

const prices = `Usage: sluice prices COMMAND ...

  prices set MODEL --input USD --output USD [--cached-input USD] [--backend ID]
  prices list

Prices are USD per million tokens; a backend's own price wins over the model's.`

const usage = `Usage: sluice usage [--tenant ID] [--from DATE|TIME] [--to DATE|TIME] [--json]

Requests and charged tokens (prompt, cached, completion) in total, by model and by UTC
day, read from the audit ledger: PostgreSQL's sluice_usage when DATABASE_URL is set, else
the usage files in SLUICE_DATA_DIR (default data/). Without --tenant: every tenant.
--from and --to are dates (2026-12-01; --to includes that day) or ISO 8601 times; by
default the last 30 days; at most 366 days. --json prints what GET /v1/usage answers.`

const helpText = `Usage: sluice help [COMMAND]

Prints help for COMMAND (serve, check-config, simulate, plan, keys, tenants, limits, prices, usage), or the overview.`

export const text = (topic: CommandName | undefined): string => {
  switch (topic) {
    case undefined:
      return overview
    case "serve":
      return serve
    case "check-config":
      return checkConfig
    case "simulate":
      return simulate
    case "plan":
      return plan
    case "keys":
      return keys
    case "tenants":
      return tenants
    case "limits":
      return limits
    case "prices":
      return prices
    case "usage":
      return usage
    case "help":
      return helpText
  }
}
