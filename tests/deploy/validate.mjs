// Checks Kubernetes manifests against the API's OpenAPI schemas without a cluster: each YAML
// document's apiVersion and kind pick the kubernetes-models class whose compiled schema
// validates it (types, formats, required fields, enums). Used by tests/e2e/test_deploy_manifests.py.
//   node tests/deploy/validate.mjs FILE.yaml ...
// Prints one JSON line per document {file, index, apiVersion, kind, name, errors} (errors: a
// list of strings; "checked": false for kinds it has no schema for) and exits 1 when a document
// has errors or a file does not parse.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// "apps/v1" -> "kubernetes-models/apps/v1/Deployment"; "v1" -> "kubernetes-models/v1/Service"
function modulePath(apiVersion, kind) {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

let bad = 0;
for (const file of process.argv.slice(2)) {
  let docs;
  try {
    docs = parseAllDocuments(readFileSync(file, "utf8"));
  } catch (e) {
    console.log(JSON.stringify({ file, index: -1, errors: [`cannot read: ${e.message}`] }));
    bad++;
    continue;
  }
  for (const [index, doc] of docs.entries()) {
    const out = { file, index, errors: [] };
    if (doc.errors.length) {
      out.errors = doc.errors.map((e) => `YAML: ${e.message}`);
      console.log(JSON.stringify(out));
      bad++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue; // an empty document (a trailing ---)
    Object.assign(out, { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata?.name });
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      out.errors.push("apiVersion and kind must be strings");
      console.log(JSON.stringify(out));
      bad++;
      continue;
    }
    let Model;
    try {
      Model = (await import(modulePath(obj.apiVersion, obj.kind)))[obj.kind];
    } catch {
      Model = undefined;
    }
    if (!Model) {
      out.checked = false; // not a built-in API kind (kustomize's Kustomization, a CRD)
      console.log(JSON.stringify(out));
      continue;
    }
    out.checked = true;
    try {
      new Model(obj).validate();
    } catch (e) {
      const details = Array.isArray(e.errors)
        ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message ?? x.keyword} ${JSON.stringify(x.params ?? {})}`)
        : [];
      out.errors = details.length ? details : [String(e.message ?? e)];
      bad++;
    }
    console.log(JSON.stringify(out));
  }
}
process.exit(bad ? 1 : 0);
