//! A fake OpenFaaS gateway (faas-netes provider) that behaves like the real one where our
//! scalers can go wrong, and plays the platform's part by starting a real `autoscale-node ROLE`
//! process per replica. Each rule below names the documented behaviour it follows.

use super::fake_http::{self, Request, Response};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_autoscale-node");

/// Basic auth of `admin:secret`.
pub const AUTH: &str = "Basic YWRtaW46c2VjcmV0";
/// An image the fake can pull anonymously (see [`FakeGateway::public_prefixes`]).
pub const PUBLIC_IMAGE: &str = "public-registry.example/autoscale-node:latest";

/// Starts `autoscale-node ROLE` as the platform would (the watchdog's HTTP port is left out:
/// many instances share this machine).
pub fn spawn_function(role: &str, env: &BTreeMap<String, String>, hostname: &str) -> Child {
    Command::new(EXE)
        .args([role, "--poll-interval-s", "0.2"])
        .args(["--parent-pid", &std::process::id().to_string()])
        .envs(env)
        .env("HOSTNAME", hostname)
        .env("AUTOSCALE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn function")
}

/// SIGTERM, then SIGKILL after 10 s, as the kubelet does.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeEdition {
    Ce,
    Pro,
}

#[derive(Default)]
pub struct FakeFunction {
    /// The role in `envProcess` (`autoscale-node ROLE --http ...`).
    pub role: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    /// Replicas after the gateway's clamp.
    pub replicas: u32,
    pub procs: Vec<Child>,
    pub invocations: u32,
    spawned: u32,
}

pub struct FakeGateway {
    pub edition: FakeEdition,
    /// Images starting with one of these can be pulled without credentials; anything else is a
    /// private image to this fake.
    pub public_prefixes: Vec<String>,
    /// How long a deleted function keeps its name.
    pub linger: Duration,
    pub functions: BTreeMap<String, FakeFunction>,
    /// Deleted functions whose pods are still going, and when they will be gone.
    pub lingering: BTreeMap<String, Instant>,
    /// `METHOD path` of every authorised call, in order.
    pub calls: Vec<String>,
    /// `status body` of every non-2xx answer, in order.
    pub errors: Vec<String>,
    /// Async invocations of functions that do not exist (accepted all the same).
    pub orphan_invocations: u32,
    /// Answer the next N calls with 500 (to exercise retries).
    pub fail_next: u32,
    /// The most functions (lingering ones included) that existed at once.
    pub max_functions_seen: usize,
}

impl FakeGateway {
    pub fn new(edition: FakeEdition) -> FakeGateway {
        FakeGateway {
            edition,
            public_prefixes: vec!["public-registry.example/".into()],
            linger: Duration::from_secs(3),
            functions: BTreeMap::new(),
            lingering: BTreeMap::new(),
            calls: Vec::new(),
            errors: Vec::new(),
            orphan_invocations: 0,
            fail_next: 0,
            max_functions_seen: 0,
        }
    }

    /// Serves the fake on a loopback port.
    pub fn serve(self) -> (Arc<Mutex<FakeGateway>>, u16) {
        let state = Arc::new(Mutex::new(self));
        let s = state.clone();
        let port = fake_http::serve(Arc::new(move |r: &Request| s.lock().unwrap().handle(r)));
        (state, port)
    }

    /// Brings the function's processes to its replica count (the provider's job).
    fn converge(&mut self, name: &str) {
        let f = self.functions.get_mut(name).unwrap();
        while (f.procs.len() as u32) < f.replicas {
            f.spawned += 1;
            let host = format!("{name}-{}", f.spawned);
            f.procs.push(spawn_function(&f.role, &f.env, &host));
        }
        while (f.procs.len() as u32) > f.replicas {
            let mut p = f.procs.pop().unwrap();
            terminate(&mut p);
        }
    }

    fn status(name: &str, f: &mut FakeFunction) -> serde_json::Value {
        let available = f
            .procs
            .iter_mut()
            .map(|p| p.try_wait().ok().flatten().is_none())
            .filter(|alive| *alive)
            .count();
        json!({"name": name, "image": f.image, "namespace": "openfaas-fn",
               "replicas": f.replicas, "availableReplicas": available, "invocationCount": f.invocations})
    }

    /// Processes of every function still running (what a shutdown must leave at 0).
    pub fn running(&mut self) -> usize {
        self.functions
            .values_mut()
            .flat_map(|f| f.procs.iter_mut())
            .map(|p| p.try_wait().ok().flatten().is_none())
            .filter(|alive| *alive)
            .count()
    }

    fn refuse(&mut self, status: u16, body: String) -> Response {
        self.errors.push(format!("{status} {body}"));
        Response { status, body }
    }

    pub fn handle(&mut self, r: &Request) -> Response {
        if r.headers.get("authorization").map(String::as_str) != Some(AUTH) {
            return Response::empty(401);
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Response::empty(500);
        }
        let now = Instant::now();
        self.lingering.retain(|_, until| *until > now);
        self.calls.push(format!("{} {}", r.method, r.path));
        let body = r.json();
        match (r.method.as_str(), r.path.as_str()) {
            // The gateway's info endpoint names its provider and version; the fake names its
            // edition in the provider's name.
            ("GET", "/system/info") => {
                let provider = match self.edition {
                    FakeEdition::Ce => "faas-netes-ce",
                    FakeEdition::Pro => "faas-netes-pro",
                };
                Response::json(
                    200,
                    json!({"provider": {"provider": provider, "orchestration": "kubernetes",
                                         "version": {"release": "0.0.0-fake"}},
                           "version": {"release": "0.0.0-fake"}, "arch": "x86_64"}),
                )
            }
            ("GET", "/system/functions") => {
                let all: Vec<_> = self
                    .functions
                    .iter_mut()
                    .map(|(n, f)| FakeGateway::status(n, f))
                    .collect();
                Response::json(200, json!(all))
            }
            ("POST", "/system/functions") => {
                let (Some(name), Some(image)) = (body["service"].as_str(), body["image"].as_str()) else {
                    return self.refuse(400, "service and image are required".into());
                };
                let name = name.to_string();
                // faas-netes CE: only images that can be pulled without credentials are
                // deployed (the Community Edition has no pull secrets); anything else is a
                // 400 before any Kubernetes object is made.
                if self.edition == FakeEdition::Ce
                    && !self.public_prefixes.iter().any(|p| image.starts_with(p))
                {
                    return self.refuse(
                        400,
                        format!("the Community Edition only allows public images; {image} cannot be pulled anonymously"),
                    );
                }
                // faas-netes creates a Deployment named after the function; while a deleted
                // one is still being torn down (foreground deletion, pods draining) the
                // create fails with Kubernetes' "already exists", surfaced as a 500.
                if self.functions.contains_key(&name) || self.lingering.contains_key(&name) {
                    return self.refuse(500, format!("deployment.apps \"{name}\" already exists"));
                }
                // OpenFaaS CE allows at most 15 functions in the installation; a Deployment
                // being torn down still counts.
                let existing = self.functions.len() + self.lingering.len();
                if self.edition == FakeEdition::Ce && existing >= 15 {
                    return self.refuse(400, "the Community Edition is limited to 15 functions".into());
                }
                let env: BTreeMap<String, String> =
                    serde_json::from_value(body["envVars"].clone()).unwrap_or_default();
                let process: Vec<&str> = body["envProcess"].as_str().unwrap_or("").split(' ').collect();
                assert_eq!(process[0], "autoscale-node", "{body}");
                self.functions.insert(
                    name.clone(),
                    FakeFunction {
                        role: process[1].to_string(),
                        image: image.to_string(),
                        env,
                        replicas: 1,
                        ..Default::default()
                    },
                );
                self.max_functions_seen = self.max_functions_seen.max(existing + 1);
                self.converge(&name);
                Response::empty(202)
            }
            ("DELETE", "/system/functions") => {
                let name = body["functionName"].as_str().unwrap_or("").to_string();
                match self.functions.remove(&name) {
                    Some(mut f) => {
                        for p in &mut f.procs {
                            terminate(p);
                        }
                        // The function is gone from the API at once, its name is not.
                        self.lingering.insert(name, Instant::now() + self.linger);
                        Response::empty(200)
                    }
                    None => self.refuse(404, format!("function {name} not found")),
                }
            }
            ("GET", p) if p.starts_with("/system/function/") => {
                let name = &p["/system/function/".len()..];
                match self.functions.get_mut(name) {
                    Some(f) => Response::json(200, FakeGateway::status(name, f)),
                    None => Response::empty(404),
                }
            }
            ("POST", p) if p.starts_with("/system/scale-function/") => {
                let name = p["/system/scale-function/".len()..].to_string();
                assert_eq!(body["serviceName"], json!(name));
                let asked = body["replicas"].as_u64().unwrap() as u32;
                let edition = self.edition;
                match self.functions.get_mut(&name) {
                    Some(f) => {
                        // CE keeps every function between 1 and 5 replicas whatever is asked,
                        // and still answers 202 Accepted.
                        f.replicas = match edition {
                            FakeEdition::Ce => asked.clamp(1, 5),
                            FakeEdition::Pro => asked,
                        };
                        self.converge(&name);
                        Response::empty(202)
                    }
                    // faas-netes looks the Deployment up and reports a failed lookup as an
                    // internal error, not 404.
                    None => self.refuse(500, format!("unable to lookup function deployment {name}")),
                }
            }
            // Async invocations are queued by the gateway before anyone looks for the
            // function: 202 whether it exists or not.
            ("POST", p) if p.starts_with("/async-function/") => {
                match self.functions.get_mut(&p["/async-function/".len()..]) {
                    Some(f) => f.invocations += 1,
                    None => self.orphan_invocations += 1,
                }
                Response::empty(202)
            }
            _ => Response::empty(404),
        }
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        for f in self.functions.values_mut() {
            for p in &mut f.procs {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
    }
}
