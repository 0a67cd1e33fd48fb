//! The shop's pages and the calls behind them, as methods of the span
//! generator: which services a request touches, in which order, and how
//! long each step takes.

use rand::Rng;

use super::*;

impl<R: Rng> Gen<'_, R> {
    fn get_product(&mut self, caller: usize, parent: usize, t: u64) -> Call {
        let id = format!("{:010X}", self.rng.gen_range(0..1u64 << 36));
        self.rpc(caller, parent, CATALOG, "GetProduct", t, |g, me, t| {
            g.out[me]
                .span
                .attributes
                .push(kv_str("app.product.id", id.clone()));
            let t = g.db(CATALOG, me, "redis", format!("GET product:{id}"), t);
            if g.rng.gen_bool(CACHE_MISS_RATE) {
                let q = "SELECT * FROM products WHERE id = $1".to_string();
                let t = g.db(CATALOG, me, "postgresql", q, t);
                (
                    g.db(CATALOG, me, "redis", format!("SET product:{id}"), t),
                    true,
                )
            } else {
                (t, true)
            }
        })
    }

    fn list_products(&mut self, caller: usize, parent: usize, t: u64) -> Call {
        self.rpc(caller, parent, CATALOG, "ListProducts", t, |g, me, t| {
            let q = "SELECT id, name, price FROM products ORDER BY rank LIMIT 20".to_string();
            (g.db(CATALOG, me, "postgresql", q, t), true)
        })
    }

    fn recommend(&mut self, parent: usize, t: u64) -> Call {
        self.rpc(
            FRONTEND,
            parent,
            RECOMMEND,
            "ListRecommendations",
            t,
            |g, me, t| {
                let t = g.list_products(RECOMMEND, me, t).end;
                (
                    g.internal(RECOMMEND, me, "rank candidates", t, 0.5, 4.0),
                    true,
                )
            },
        )
    }

    fn convert(&mut self, caller: usize, parent: usize, t: u64) -> Call {
        self.rpc(caller, parent, CURRENCY, "Convert", t, |g, _, t| {
            (t + g.ms(0.05, 0.5), true)
        })
    }

    fn cart(&mut self, caller: usize, parent: usize, method: &str, cmd: &str, t: u64) -> Call {
        let user = self.rng.gen_range(0..50_000u32);
        self.rpc(caller, parent, CART, method, t, |g, me, t| {
            (
                g.db(CART, me, "redis", format!("{cmd} cart:u{user:05}"), t),
                true,
            )
        })
    }

    fn quote(&mut self, caller: usize, parent: usize, t: u64) -> Call {
        self.rpc(caller, parent, SHIPPING, "GetQuote", t, |g, _, t| {
            let slow = g.rng.gen_bool(SLOW_QUOTE_RATE);
            (
                t + if slow {
                    g.ms(300.0, 900.0)
                } else {
                    g.ms(1.5, 9.0)
                },
                true,
            )
        })
    }

    /// The frontend's SERVER span for one of the shop's pages.
    pub(super) fn request(&mut self, start: u64) {
        let pick = self.rng.gen_range(0..100);
        let (method, route) = match pick {
            0..=24 => ("GET", "/"),
            25..=54 => ("GET", "/product/{id}"),
            55..=69 => ("POST", "/api/cart"),
            70..=79 => ("GET", "/cart"),
            _ => ("POST", "/api/checkout"),
        };
        let attrs = vec![
            kv_str("http.request.method", method),
            kv_str("http.route", route),
            kv_str("url.scheme", "https"),
            kv_int("http.response.status_code", 200),
            kv_str("server.address", "shop.example.com"),
            kv_str(
                "client.address",
                format!("203.0.113.{}", self.rng.gen_range(1..255)),
            ),
            kv_str(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
            ),
        ];
        let root = self.open(
            FRONTEND,
            None,
            format!("{method} {route}"),
            SpanKind::Server,
            start,
            attrs,
        );
        let t = start + self.ms(0.2, 1.5);
        let (end, ok) = match route {
            "/" => {
                // The page's calls run in parallel; it renders when all are back.
                let a = self.list_products(FRONTEND, root, t).end;
                let skew = self.ms(0.0, 0.3);
                let b = self.recommend(root, t + skew).end;
                let c = self.rpc(
                    FRONTEND,
                    root,
                    CURRENCY,
                    "GetSupportedCurrencies",
                    t,
                    |g, _, t| (t + g.ms(0.1, 0.6), true),
                );
                let t = a.max(b).max(c.end);
                (
                    self.internal(FRONTEND, root, "render home", t, 1.0, 5.0),
                    true,
                )
            }
            "/product/{id}" => {
                let t = self.get_product(FRONTEND, root, t).end;
                let a = self.recommend(root, t).end;
                let b = self.convert(FRONTEND, root, t).end;
                (
                    self.internal(FRONTEND, root, "render product", a.max(b), 1.0, 4.0),
                    true,
                )
            }
            "/api/cart" => {
                let t = self.get_product(FRONTEND, root, t).end;
                (self.cart(FRONTEND, root, "AddItem", "HSET", t).end, true)
            }
            "/cart" => {
                let mut t = self.cart(FRONTEND, root, "GetCart", "HGETALL", t).end;
                for _ in 0..self.rng.gen_range(1..4) {
                    t = self.convert(FRONTEND, root, t).end;
                }
                let t = self.quote(FRONTEND, root, t).end;
                (
                    self.internal(FRONTEND, root, "render cart", t, 1.0, 4.0),
                    true,
                )
            }
            _ => {
                let c = self.rpc(FRONTEND, root, CHECKOUT, "PlaceOrder", t, |g, me, t| {
                    g.place_order(me, t)
                });
                (c.end, c.ok)
            }
        };
        let tail = self.ms(0.1, 1.0);
        self.close(root, end + tail);
        if !ok {
            self.fail(root, "checkout failed: card declined");
        }
    }

    /// checkout's PlaceOrder: gather the cart, price it, charge, ship,
    /// confirm by email through the queue, empty the cart.
    fn place_order(&mut self, me: usize, t: u64) -> (u64, bool) {
        let mut t = self.cart(CHECKOUT, me, "GetCart", "HGETALL", t).end;
        for _ in 0..self.rng.gen_range(1..4) {
            t = self.get_product(CHECKOUT, me, t).end;
            t = self.convert(CHECKOUT, me, t).end;
        }
        t = self.quote(CHECKOUT, me, t).end;
        let declined = self.rng.gen_bool(DECLINE_RATE);
        let card = ["visa", "mastercard", "amex"][self.rng.gen_range(0..3)];
        let charge = self.rpc(CHECKOUT, me, PAYMENT, "Charge", t, |g, pay, t| {
            g.out[pay]
                .span
                .attributes
                .push(kv_str("app.payment.card_type", card));
            let end = t + g.ms(15.0, 70.0);
            if declined {
                g.out[pay].span.events.push(pt::span::Event {
                    time_unix_nano: end,
                    name: "exception".into(),
                    attributes: vec![
                        kv_str("exception.type", "CardDeclinedError"),
                        kv_str(
                            "exception.message",
                            "card declined by issuer: insufficient funds",
                        ),
                    ],
                    ..Default::default()
                });
            }
            (end, !declined)
        });
        if !charge.ok {
            self.fail(me, "card declined");
            return (charge.end, false);
        }
        t = self
            .rpc(
                CHECKOUT,
                me,
                SHIPPING,
                "ShipOrder",
                charge.end,
                |g, _, t| (t + g.ms(1.0, 6.0), true),
            )
            .end;
        t = self.publish(me, t);
        (self.cart(CHECKOUT, me, "EmptyCart", "DEL", t).end, true)
    }

    /// PRODUCER span in checkout; email's CONSUMER span runs later, after
    /// the checkout has usually answered.
    fn publish(&mut self, me: usize, t: u64) -> u64 {
        let msg = format!("{:016x}", self.rng.gen::<u64>());
        let attrs = |op: &str| {
            vec![
                kv_str("messaging.system", "kafka"),
                kv_str("messaging.destination.name", "orders"),
                kv_str("messaging.operation", op),
                kv_str("messaging.message.id", msg.clone()),
            ]
        };
        let p = self.open(
            CHECKOUT,
            Some(me),
            "orders publish".into(),
            SpanKind::Producer,
            t,
            attrs("publish"),
        );
        let d = self.ms(0.3, 2.0);
        let sent = self.close(p, t + d);
        let lag = self.ms(2.0, 40.0);
        let c = self.open(
            EMAIL,
            Some(p),
            "orders process".into(),
            SpanKind::Consumer,
            sent + lag,
            attrs("process"),
        );
        let begin = sent + lag + self.ms(0.1, 0.5);
        let t2 = self.internal(EMAIL, c, "render order confirmation", begin, 1.0, 6.0);
        let smtp = self.open(
            EMAIL,
            Some(c),
            "SMTP send".into(),
            SpanKind::Client,
            t2,
            vec![kv_str("server.address", "smtp.example.com")],
        );
        let d = self.ms(10.0, 40.0);
        let done = self.close(smtp, t2 + d);
        let tail = self.ms(0.1, 0.5);
        self.close(c, done + tail);
        sent
    }
}
