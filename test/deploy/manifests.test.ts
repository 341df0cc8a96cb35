/**
 * The deployment files under deploy/ are valid and agree with Sluice and with each other:
 * the Kubernetes manifests against the Kubernetes schemas (kubernetes-models, from npm: no
 * network), the compose file against the compose-spec JSON schema (shipped by dclint,
 * validated with ajv), and the checks that matter: probe paths answer on the real gateway,
 * the grace periods exceed the configured drain, the configs decode with Sluice's own
 * loader (keys from the Secret), the container arguments parse with Sluice's own command
 * line, and every name one file uses is defined by another.
 */
import { Ajv } from "ajv"
import { Effect } from "effect"
import { ConfigMap } from "kubernetes-models/v1/ConfigMap"
import { Secret } from "kubernetes-models/v1/Secret"
import { Service } from "kubernetes-models/v1/Service"
import { Deployment } from "kubernetes-models/apps/v1/Deployment"
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler"
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Yaml from "yaml"
import * as Command from "../../src/cli/Command.ts"
import * as Load from "../../src/config/Load.ts"
import type { Plan } from "../../src/config/Plan.ts"
import { durationMs } from "../../src/config/FileSchema.ts"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

const root = join(import.meta.dirname, "..", "..")
const deploy = join(root, "deploy")
const k8sDir = join(deploy, "k8s")
const read = (...path: ReadonlyArray<string>) => readFileSync(join(...path), "utf8")
const yamlDocs = (text: string): ReadonlyArray<unknown> =>
  Yaml.parseAllDocuments(text, { merge: true, uniqueKeys: true }).map((d) => {
    expect(d.errors).toEqual([])
    return d.toJS()
  })
const plan = (yaml: string, source: string, env: Readonly<Record<string, string>>): Promise<Plan> =>
  Effect.runPromise(Load.parse(yaml, source, env))

/** The Kubernetes kinds the manifests may use, each with its schema-validated model. */
const MODELS = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler
} as const

interface Manifest {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: { readonly name: string }
}
const manifestFiles = readdirSync(k8sDir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort()
const manifests: ReadonlyArray<{ readonly file: string; readonly doc: Manifest }> = manifestFiles.flatMap((file) =>
  yamlDocs(read(k8sDir, file)).map((doc) => ({ file, doc: doc as Manifest }))
)
const one = <K extends keyof typeof MODELS>(key: K): InstanceType<(typeof MODELS)[K]> => {
  const found = manifests.filter(({ doc }) => `${doc.apiVersion}/${doc.kind}` === key)
  expect(found.length, `exactly one ${key}`).toBe(1)
  return new MODELS[key](found[0]!.doc as never) as InstanceType<(typeof MODELS)[K]>
}

describe("Kubernetes manifests (deploy/k8s)", () => {
  const deployment = one("apps/v1/Deployment")
  const pod = deployment.spec!.template.spec!
  const container = pod.containers.find((c) => c.name === "sluice")!
  const configMap = one("v1/ConfigMap")
  const secret = one("v1/Secret")
  const service = one("v1/Service")
  const pdb = one("policy/v1/PodDisruptionBudget")
  const hpa = one("autoscaling/v2/HorizontalPodAutoscaler")
  const secretEnv = { ...(secret.stringData ?? {}) }
  const configKey = Object.keys(configMap.data ?? {})[0]!
  let gw: TestGateway
  let engine: Fake.FakeEngine

  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(`backends: [{ id: a, url: ${engine.url}, models: [m] }]`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("are valid against the Kubernetes schemas", () => {
    expect(manifests.length).toBeGreaterThanOrEqual(6)
    for (const { file, doc } of manifests) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}` as keyof typeof MODELS]
      expect(Model, `${file}: no schema for ${doc.apiVersion} ${doc.kind}`).toBeDefined()
      expect(() => new Model(doc as never).validate(), `${file} (${doc.kind} ${doc.metadata.name})`).not.toThrow()
    }
  })

  it("would reject an invalid manifest", () => {
    const broken = structuredClone(manifests.find(({ doc }) => doc.kind === "Deployment")!.doc) as unknown as {
      spec: { template: { spec: { containers: Array<{ ports: Array<{ containerPort: unknown }> }> } } }
    }
    broken.spec.template.spec.containers[0]!.ports[0]!.containerPort = "eighty"
    expect(() => new Deployment(broken as never).validate()).toThrow(/containerPort must be integer/)
  })

  it("are all listed in kustomization.yaml", () => {
    const kustomization = yamlDocs(read(k8sDir, "kustomization.yaml"))[0] as { resources: ReadonlyArray<string> }
    expect([...kustomization.resources].sort()).toEqual(manifestFiles)
  })

  it("probe paths that the gateway answers, on the port it listens on", async () => {
    const probes = [container.startupProbe, container.livenessProbe, container.readinessProbe]
    expect(probes.map((p) => p?.httpGet?.path)).toEqual(["/health/live", "/health/live", "/health/ready"])
    for (const probe of probes) {
      const res = await fetch(`${gw.url}${probe!.httpGet!.path}`)
      expect(res.status, probe!.httpGet!.path).toBe(200)
      expect(probe!.httpGet!.port).toBe("http")
    }
    const port = container.ports!.find((p) => p.name === "http")!.containerPort
    expect(container.env!.find((e) => e.name === "PORT")!.value).toBe(String(port))
    expect(read(root, "Dockerfile")).toMatch(new RegExp(`^EXPOSE ${port}$`, "m"))
    expect(service.spec!.ports!.map((p) => p.targetPort)).toEqual(["http"])
  })

  it("the ConfigMap's config decodes with Sluice's own loader, with the keys from the Secret", async () => {
    const p = await plan(configMap.data![configKey]!, `${configMap.metadata!.name}/${configKey}`, secretEnv)
    expect(p.backends.length).toBeGreaterThan(0)
    expect(p.backends.every((b) => b.simulate === undefined)).toBe(true)
    // Without the Secret the config is refused: its api_key_env variables really come from there.
    await expect(plan(configMap.data![configKey]!, "configmap", {})).rejects.toThrow(/api_key_env: environment variable \w+ is not set/)
    expect(container.envFrom!.map((e) => e.secretRef?.name)).toContain(secret.metadata!.name)
  })

  it("the container's arguments parse with Sluice's command line and point at the mounted config", () => {
    const invocation = Command.parse(container.args ?? [])
    expect(invocation._tag).toBe("Serve")
    if (invocation._tag !== "Serve") return
    const mount = container.volumeMounts!.find((m) => m.name === "config")!
    const volume = pod.volumes!.find((v) => v.name === "config")!
    expect(volume.configMap!.name).toBe(configMap.metadata!.name)
    expect(invocation.flags.config).toBe(`${mount.mountPath}/${configKey}`)
    expect(mount.readOnly).toBe(true)
  })

  it("gives the drain time to finish: grace period > preStop pause + timeouts.drain", async () => {
    const p = await plan(configMap.data![configKey]!, "configmap", secretEnv)
    const command = container.lifecycle!.preStop!.exec!.command!
    expect(command[0]).toBe("sleep")
    const preStopMs = Number(command[1]) * 1000
    const graceMs = pod.terminationGracePeriodSeconds! * 1000
    expect(preStopMs).toBeGreaterThan(0)
    expect(graceMs).toBeGreaterThan(preStopMs + p.timeouts.drainMs)
  })

  it("runs non-root on a read-only root filesystem with a writable data volume, within resource limits", () => {
    expect(pod.securityContext!.runAsNonRoot).toBe(true)
    const user = /^USER (\d+):(\d+)$/m.exec(read(root, "Dockerfile"))!
    expect(pod.securityContext!.runAsUser).toBe(Number(user[1]))
    expect(container.securityContext!.readOnlyRootFilesystem).toBe(true)
    expect(container.securityContext!.allowPrivilegeEscalation).toBe(false)
    expect(container.securityContext!.capabilities!.drop).toEqual(["ALL"])
    const dataDir = container.env!.find((e) => e.name === "SLUICE_DATA_DIR")!.value
    const data = container.volumeMounts!.find((m) => m.mountPath === dataDir)
    expect(data, "a volume at SLUICE_DATA_DIR").toBeDefined()
    expect(pod.volumes!.find((v) => v.name === data!.name)!.emptyDir).toBeDefined()
    for (const key of ["cpu", "memory"]) {
      expect(container.resources!.requests![key], `requests.${key}`).toBeDefined()
      expect(container.resources!.limits![key], `limits.${key}`).toBeDefined()
    }
  })

  it("the Service, PodDisruptionBudget and autoscaler select the Deployment's pods", () => {
    const labels = deployment.spec!.template.metadata!.labels!
    const selects = (selector: Readonly<Record<string, string>>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v)
    expect(selects(deployment.spec!.selector.matchLabels!)).toBe(true)
    expect(selects(service.spec!.selector!)).toBe(true)
    expect(selects(pdb.spec!.selector!.matchLabels!)).toBe(true)
    expect(hpa.spec!.scaleTargetRef).toMatchObject({ kind: "Deployment", name: deployment.metadata!.name })
    // A PDB that the minimum replica count cannot satisfy would block every node drain.
    expect(hpa.spec!.minReplicas!).toBeGreaterThan(Number(pdb.spec!.minAvailable))
    expect(deployment.spec!.replicas!).toBeGreaterThan(Number(pdb.spec!.minAvailable))
  })
})

interface ComposeService {
  readonly build?: { readonly context: string; readonly dockerfile: string }
  readonly image?: string
  readonly command?: ReadonlyArray<string>
  readonly environment?: Readonly<Record<string, string>>
  readonly ports?: ReadonlyArray<string>
  readonly volumes?: ReadonlyArray<string>
  readonly stop_grace_period?: string
}

describe("compose (deploy/compose.yaml)", () => {
  const compose = yamlDocs(read(deploy, "compose.yaml"))[0] as { readonly services: Readonly<Record<string, ComposeService>> }
  const services = compose.services
  const gateways = Object.entries(services).filter(([, s]) => s.image?.startsWith("sluice") === true)

  it("is valid against the compose-spec schema", () => {
    const require = createRequire(import.meta.url)
    const schemaPath = join(require.resolve("dclint/package.json"), "..", "schemas", "compose.schema.json")
    const schema = JSON.parse(readFileSync(schemaPath, "utf8")) as { readonly $schema: string }
    // The compose spec names its meta-schema by https URL; ajv knows draft-07 by its http one.
    const draft07 = JSON.parse(readFileSync(require.resolve("ajv/dist/refs/json-schema-draft-07.json"), "utf8")) as object
    const ajv = new Ajv({ allErrors: true, strict: false })
    ajv.addMetaSchema({ ...draft07, $id: schema.$schema })
    const validate = ajv.compile(schema)
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true)
    // The schema rejects what compose would: an unknown key under a service.
    const typo = structuredClone(compose) as { services: Record<string, Record<string, unknown>> }
    typo.services["redis"]!["helthcheck"] = {}
    expect(validate(typo)).toBe(false)
  })

  it("runs two gateway replicas from the top-level Dockerfile with shared Postgres and Redis", () => {
    expect(gateways.map(([name]) => name)).toEqual(["sluice-1", "sluice-2"])
    for (const [, s] of gateways) {
      expect(existsSync(join(deploy, s.build!.context, s.build!.dockerfile))).toBe(true)
      expect(s.environment!["DATABASE_URL"]).toMatch(/@postgres:5432\//)
      expect(s.environment!["REDIS_URL"]).toBe("redis://redis:6379")
      expect(Command.parse(s.command ?? [])._tag).toBe("Serve")
    }
    expect(new Set(gateways.flatMap(([, s]) => s.ports ?? [])).size).toBe(2)
    for (const name of ["postgres", "redis", "prometheus", "grafana", "otel-collector"]) expect(services[name], name).toBeDefined()
  })

  it("mounts only files that exist, and the gateway's config decodes with a drain shorter than the stop grace period", async () => {
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(":")[0]!
        if (source.startsWith(".")) expect(existsSync(join(deploy, source)), `${name}: ${source}`).toBe(true)
      }
    }
    for (const [name, s] of gateways) {
      const mount = s.volumes!.find((v) => v.endsWith(":/etc/sluice/sluice.yaml:ro"))!
      const configPath = mount.split(":")[0]!
      const invocation = Command.parse(s.command ?? [])
      expect(invocation._tag === "Serve" && invocation.flags.config).toBe("/etc/sluice/sluice.yaml")
      const p = await plan(read(deploy, configPath), configPath, {})
      expect(durationMs(s.stop_grace_period!), name).toBeGreaterThan(p.timeouts.drainMs)
    }
  })

  it("Prometheus scrapes both replicas; Grafana gets that Prometheus and the dashboard", () => {
    const prometheus = yamlDocs(read(deploy, "prometheus", "prometheus.yml"))[0] as {
      scrape_configs: ReadonlyArray<{ metrics_path: string; static_configs: ReadonlyArray<{ targets: ReadonlyArray<string> }> }>
    }
    const sluiceJob = prometheus.scrape_configs.find((j) => j.metrics_path === "/metrics")!
    expect(sluiceJob.static_configs.flatMap((c) => c.targets).sort()).toEqual(gateways.map(([name]) => `${name}:8080`))
    const datasources = yamlDocs(read(deploy, "grafana", "provisioning", "datasources", "prometheus.yaml"))[0] as {
      datasources: ReadonlyArray<{ type: string; url: string }>
    }
    expect(datasources.datasources[0]).toMatchObject({ type: "prometheus", url: "http://prometheus:9090" })
    const providers = yamlDocs(read(deploy, "grafana", "provisioning", "dashboards", "sluice.yaml"))[0] as {
      providers: ReadonlyArray<{ options: { path: string } }>
    }
    const grafanaMounts = services["grafana"]!.volumes!.map((v) => v.split(":"))
    const dashboardMount = grafanaMounts.find(([source]) => source === "./grafana/sluice.json")!
    expect(dashboardMount[1]!.startsWith(`${providers.providers[0]!.options.path}/`)).toBe(true)
    expect(grafanaMounts.some(([source, target]) => source === "./grafana/provisioning" && target === "/etc/grafana/provisioning")).toBe(true)
  })

  it("the collector receives OTLP/HTTP where the gateways send their traces", () => {
    const collector = yamlDocs(read(deploy, "otel", "collector.yaml"))[0] as {
      receivers: { otlp: { protocols: { http: { endpoint: string } } } }
      service: { pipelines: { traces: { receivers: ReadonlyArray<string>; exporters: ReadonlyArray<string> } } }
    }
    const port = collector.receivers.otlp.protocols.http.endpoint.split(":")[1]
    for (const [, s] of gateways) expect(s.environment!["OTEL_EXPORTER_OTLP_ENDPOINT"]).toBe(`http://otel-collector:${port}`)
    expect(collector.service.pipelines.traces.receivers).toContain("otlp")
    expect(collector.service.pipelines.traces.exporters.length).toBeGreaterThan(0)
  })
})
