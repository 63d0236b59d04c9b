-- Demo database for Graphix: a small independent bookshop.
-- Written for this project; all names and numbers are invented.
PRAGMA foreign_keys = ON;

CREATE TABLE author (
    author_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT,
    birth_year INTEGER
);

CREATE TABLE book (
    book_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    author_id INTEGER REFERENCES author(author_id),
    genre TEXT,
    publication_year INTEGER,
    price REAL,
    pages INTEGER
);

CREATE TABLE customer (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT,
    member_since INTEGER
);

CREATE TABLE purchase (
    purchase_id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customer(customer_id),
    book_id INTEGER REFERENCES book(book_id),
    quantity INTEGER,
    purchase_date TEXT
);

INSERT INTO author VALUES
    (1, 'Amara Okafor', 'Nigeria', 1971),
    (2, 'Lucas Ferreira', 'Brazil', 1985),
    (3, 'Ingrid Halvorsen', 'Norway', 1962),
    (4, 'Kenji Watanabe', 'Japan', 1979),
    (5, 'Elena Marchetti', 'Italy', 1990),
    (6, 'Samuel Brooks', 'Canada', 1958),
    (7, 'Priya Raman', 'India', 1983);

INSERT INTO book VALUES
    (1, 'The River Between Seasons', 1, 'Fiction', 2004, 14.99, 320),
    (2, 'Salt and Harbor', 1, 'Fiction', 2012, 16.50, 288),
    (3, 'A Short History of Maps', 2, 'History', 2018, 24.00, 410),
    (4, 'Northern Lights Cookbook', 3, 'Cooking', 2009, 29.95, 215),
    (5, 'Winter Tales', 3, 'Fiction', 1998, 12.00, 190),
    (6, 'Quiet Algorithms', 4, 'Science', 2020, 35.00, 512),
    (7, 'The Paper Garden', 4, 'Fiction', 2015, 15.25, 264),
    (8, 'Stone Bridges of Tuscany', 5, 'Travel', 2021, 27.40, 230),
    (9, 'Learning to Sail', 6, 'Sports', 1995, 9.99, 150),
    (10, 'Forests After Fire', 6, 'Science', 2003, 22.10, 340),
    (11, 'Monsoon Letters', 7, 'Poetry', 2016, 11.75, 120),
    (12, 'Spice Routes', 7, 'History', 2019, 26.00, 380);

INSERT INTO customer VALUES
    (1, 'Hannah Lee', 'Toronto', 2015),
    (2, 'Omar Haddad', 'Lyon', 2018),
    (3, 'Sofia Novak', 'Prague', 2020),
    (4, 'Daniel Kim', 'Toronto', 2012),
    (5, 'Grace Mensah', 'Accra', 2021),
    (6, 'Mateo Silva', 'Lisbon', 2019),
    (7, 'Ava Lindqvist', 'Stockholm', 2022);

INSERT INTO purchase VALUES
    (1, 1, 1, 1, '2023-01-14'),
    (2, 1, 6, 2, '2023-02-03'),
    (3, 2, 3, 1, '2023-02-20'),
    (4, 3, 8, 1, '2023-03-11'),
    (5, 4, 1, 3, '2023-03-15'),
    (6, 4, 4, 1, '2023-04-02'),
    (7, 5, 11, 2, '2023-04-28'),
    (8, 6, 12, 1, '2023-05-09'),
    (9, 2, 6, 1, '2023-05-30'),
    (10, 3, 2, 1, '2023-06-18'),
    (11, 1, 10, 1, '2023-07-07'),
    (12, 6, 3, 2, '2023-08-21');
