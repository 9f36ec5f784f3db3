/**
 * A real Cosmictron server for the tests, started as a process from this checkout's
 * Python sources (`src/`), on a fixed port so a restart keeps its URL.
 *
 * The Python is `$COSMICTRON_PYTHON`, else the checkout's `.venv` (what `scripts/test`
 * makes), else `python3`.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

export function python(): string {
  if (process.env.COSMICTRON_PYTHON) return process.env.COSMICTRON_PYTHON;
  const venv = join(ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

export function pythonEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: [join(ROOT, "src"), process.env.PYTHONPATH].filter(Boolean).join(":"),
    PYTHONUNBUFFERED: "1",
  };
}

const CLI = ["-c", "import sys; sys.argv[0] = 'cosmictron-cli'; from cosmictron.cli.main import main; main()"];

/** Run `cosmictron-cli` with `args`; its exit status and output. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(python(), [...CLI, ...args], { env: { ...pythonEnv(), ...env }, encoding: "utf8", timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

export class TestServer {
  process!: ChildProcess;
  readonly url: string;

  constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(): Promise<TestServer> {
    const dir = mkdtempSync(join(tmpdir(), "cosmictron-sdk-"));
    const server = new TestServer(join(dir, "data"), await freePort());
    await server.launch();
    return server;
  }

  /** Start (or start again, after a kill) the server process on the same port and data. */
  launch(): Promise<void> {
    const env = { ...pythonEnv(), COSMICTRON_CONFIG_DIR: this.configDir };
    this.process = spawn(
      python(),
      [...CLI, "start", "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir, "--profile", "development"],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    return new Promise((done, fail) => {
      let output = "";
      const timer = setTimeout(() => fail(new Error(`the server did not start:\n${output}`)), 60_000);
      const read = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("listening on ")) {
          clearTimeout(timer);
          this.process.stdout!.off("data", read);
          this.process.stdout!.resume();
          done();
        }
      };
      this.process.stdout!.on("data", read);
      this.process.stderr!.on("data", (chunk) => (output += chunk.toString()));
      this.process.once("exit", (code) => {
        clearTimeout(timer);
        fail(new Error(`the server exited (${code}):\n${output}`));
      });
    });
  }

  kill(): Promise<void> {
    return this.stop("SIGKILL");
  }

  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.process;
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((done) => {
      child.once("exit", () => done());
      child.kill(signal);
    });
  }

  get configDir(): string {
    return join(this.dataDir, "..", "config");
  }

  get operatorToken(): string {
    return readFileSync(join(this.dataDir, "server", "operator.token"), "utf8").trim();
  }

  async http(method: string, path: string, body?: string | object, token?: string): Promise<any> {
    const response = await fetch(this.url + path, {
      method,
      body: typeof body === "string" || body === undefined ? body : JSON.stringify(body),
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(typeof body === "object" ? { "Content-Type": "application/json" } : {}),
      },
    });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return parsed;
  }

  deploy(name: string, source: string): Promise<any> {
    return this.http("PUT", `/v1/database/${name}`, source, this.operatorToken);
  }
}
