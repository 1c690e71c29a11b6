/** The Hono app: plain text, JSON, a path parameter, a query string, a JSON body and a 404. */
import { Hono } from "hono";

export const app = new Hono();

app.get("/", (c) => c.text("Hello from Hono on Atoll!\n"));

app.get("/api/info", (c) => c.json({ framework: "hono", runtime: "atoll", ok: true }));

app.get("/users/:id", (c) => {
  const id = c.req.param("id");
  return c.json({ id, name: `user ${id}` });
});

app.get("/greet", (c) => c.text(`Hello, ${c.req.query("name") ?? "world"}!\n`));

app.post("/api/echo", async (c) => {
  const body: unknown = await c.req.json();
  return c.json({ received: body }, 201);
});

app.notFound((c) => c.json({ error: "not found", path: c.req.path }, 404));
