//! Aligned text tables and the `page N of M, K things` footer of the list commands.

use crate::api::Pagination;

/// Rows of cells as left-aligned columns two spaces apart; trailing spaces trimmed.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A page of a list command: the table (`rows`, header first) and `page 1 of 3, 57 tokens`;
/// `no KIND` when there are none (`kind`: "upload tokens"); a hint when the page is past the end.
pub fn page(rows: &[Vec<String>], p: &Pagination, kind: &str, noun: &str, nouns: &str) -> String {
    if rows.len() <= 1 && p.items_total == 0 {
        return format!("no {kind}\n");
    }
    if rows.len() <= 1 {
        let pages = if p.pages_total == 1 {
            "is 1 page".to_owned()
        } else {
            format!("are {} pages", p.pages_total)
        };
        return format!(
            "no {kind} on page {}: there {pages} of {} ({} {nouns}); try --page {}\n",
            p.current_page, p.page_size, p.items_total, p.pages_total
        );
    }
    let noun = if p.items_total == 1 { noun } else { nouns };
    format!(
        "{}page {} of {}, {} {noun}\n",
        render(rows),
        p.current_page,
        p.pages_total,
        p.items_total
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_characters_not_bytes() {
        let rows = vec![
            vec!["ID".to_owned(), "TITLE".to_owned(), "X".to_owned()],
            vec!["vi1".to_owned(), "é".to_owned(), String::new()],
        ];
        assert_eq!(render(&rows), "ID   TITLE  X\nvi1  é\n");
    }
}
