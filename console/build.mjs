// Build the console into the Python package (src/cosmictron/server/static/console), or with
// --check, build into a temporary folder and fail if the committed files differ.
// esbuild's output depends only on its version and the inputs (package-lock.json pins both).
import { build } from "esbuild";
import { mkdtempSync, readFileSync, readdirSync, rmSync, copyFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, "..", "src", "cosmictron", "server", "static", "console");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "console-")) : committed;
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(here, "src", "main.tsx")],
  outfile: join(out, "console.js"),
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
await build({
  entryPoints: [join(here, "src", "console.css")],
  outfile: join(out, "console.css"),
  bundle: true,
  minify: true,
  logLevel: "warning",
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));

if (check) {
  const names = (dir) => readdirSync(dir).sort();
  const built = names(out);
  let same = JSON.stringify(built) === JSON.stringify(names(committed));
  for (const name of built) {
    if (!same) break;
    same = readFileSync(join(out, name)).equals(readFileSync(join(committed, name)));
  }
  rmSync(out, { recursive: true, force: true });
  if (!same) {
    console.error(
      "the committed console bundle differs from what console/ builds: run scripts/build-console and commit it",
    );
    process.exit(1);
  }
  console.log("console bundle is up to date");
}
