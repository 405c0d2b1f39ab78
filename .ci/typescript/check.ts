// Compiled (never run) by .ci/clients beside the types openapi-typescript generates from
// openapi.yaml (enlace.d.ts): a script written against them with openapi-fetch, the client made
// for them, must type-check under `strict`. It walks the README's main flows.
import createClient from "openapi-fetch";
import type { components, paths } from "./enlace";

type SegmentFilter = components["schemas"]["SegmentFilter"];

export async function flows(baseUrl: string, email: string, password: string): Promise<void> {
  const api = createClient<paths>({ baseUrl });

  const signedIn = await api.POST("/api/v1/auth/token", { body: { email, password } });
  if (!signedIn.data) throw new Error(signedIn.error?.detail ?? "sign-in failed");
  const headers = { Authorization: `Bearer ${signedIn.data.access_token}` };

  await api.POST("/api/v1/interests", {
    headers,
    body: { slug: "housing", name: { en: "Housing", es: "Vivienda" } },
  });
  await api.POST("/api/v1/subscribe", {
    body: { email: "ana@example.org", language: "es", interests: ["housing"] },
  });
  const confirmed = await api.POST("/api/v1/confirm", { body: { token: "from-the-mail" } });
  if (confirmed.data) console.log(confirmed.data.status);

  await api.POST("/api/v1/subscribers", {
    headers,
    body: {
      email: "luis@example.org",
      consent: { mode: "recorded", source: "a meeting", note: "signed the sheet" },
    },
  });

  const filter: SegmentFilter = {
    all: [{ interest: "housing" }, { not: { email_domain: "example.com" } }, { language: "es" }],
  };
  const segment = await api.POST("/api/v1/segments", { headers, body: { name: "Vivienda", filter } });
  if (!segment.data) throw new Error(segment.error?.detail ?? "no segment");

  const draft = await api.POST("/api/v1/newsletters", {
    headers,
    body: { subject: "Housing meeting", html: "<p>Hi {{ name or 'friend' }}</p>", segment_id: segment.data.id },
  });
  if (!draft.data) throw new Error(draft.error?.detail ?? "no draft");
  const id = draft.data.id;
  await api.POST("/api/v1/newsletters/{id}/test", {
    headers,
    params: { path: { id } },
    body: { to: ["editor@example.org"], language: "es" },
  });
  const sent = await api.POST("/api/v1/newsletters/{id}/send", {
    params: { path: { id }, header: { "Idempotency-Key": "housing-meeting" } },
    headers,
  });
  const status: components["schemas"]["NewsletterStatus"] | undefined = sent.data?.status;
  console.log(status, sent.data?.progress?.sent);

  const page = await api.GET("/api/v1/subscribers", { headers, params: { query: { limit: 10 } } });
  if (page.data?.has_more) console.log(page.data.next_cursor);
  await api.GET("/api/v1/exports/subscribers", { headers, params: { query: { format: "ndjson" } }, parseAs: "text" });
}
