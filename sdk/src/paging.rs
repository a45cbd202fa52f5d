//! Paging for list actions: `page` (from 1) and `page_size` params, checked once, and the slice of a
//! list they name.

use crate::Error;

/// Most entries one page may hold.
pub const MAX_PAGE_SIZE: usize = 100;

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The page, from 1.
    pub page: usize,
    /// Entries per page; `None` lists everything on page 1.
    pub size: Option<usize>,
}

impl Page {
    /// The page the params `page` (default 1) and `page_size` (1 to [`MAX_PAGE_SIZE`], default: no
    /// paging) ask for.
    ///
    /// # Errors
    /// `bad_params` naming the param that is out of range.
    pub fn from_params(page: Option<i64>, size: Option<i64>) -> Result<Self, Error> {
        let page = usize::try_from(page.unwrap_or(1))
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| Error::bad_params("`page` counts from 1"))?;
        let size = size
            .map(|n| {
                usize::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| Error::bad_params(format!("`page_size` must be 1 to {MAX_PAGE_SIZE}")))
            })
            .transpose()?;
        Ok(Self { page, size })
    }

    /// This page of `items` and how many pages they fill (at least 1).
    pub fn cut<T>(&self, items: Vec<T>) -> (usize, Vec<T>) {
        match self.size {
            Some(size) => (
                items.len().div_ceil(size).max(1),
                items
                    .into_iter()
                    .skip((self.page - 1).saturating_mul(size))
                    .take(size)
                    .collect(),
            ),
            None if self.page == 1 => (1, items),
            None => (1, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked_and_cut() {
        assert!(Page::from_params(Some(0), None).is_err());
        assert!(Page::from_params(None, Some(0)).is_err());
        assert!(Page::from_params(None, Some(101)).is_err());
        let p = Page::from_params(Some(2), Some(3)).unwrap();
        assert_eq!(p.cut((1..=7).collect()), (3, vec![4, 5, 6]));
        assert_eq!(
            Page::from_params(Some(4), Some(3))
                .unwrap()
                .cut((1..=7).collect()),
            (3, vec![])
        );
        let all = Page::from_params(None, None).unwrap();
        assert_eq!(all.cut(vec![1, 2]), (1, vec![1, 2]));
        assert_eq!(
            Page::from_params(Some(2), None).unwrap().cut(vec![1, 2]),
            (1, vec![])
        );
    }
}
