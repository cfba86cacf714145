-- The demo's own table, recreated by `tidegate demo` before each run.
DROP TABLE IF EXISTS public.demo_customers;
CREATE TABLE public.demo_customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       varchar(120) NOT NULL UNIQUE,
    city        text,
    signup_date date NOT NULL,
    balance     numeric(12,2),
    active      boolean NOT NULL,
    last_seen   timestamptz,
    notes       text
);
